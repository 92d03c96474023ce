"""The cost of content fingerprints (docs/inputs.md): dry runs and a generation job with big
inputs, with an empty fingerprint cache (cold) and a filled one (warm).

Inputs, made under benchmarks/output/fingerprints (`--clean` removes them):

- "weights": a denoiser whose weights file holds --weights-gb GB (the built-in blanket_net
  with many hidden channels on a 1 x 1 latent grid: big weights, cheap sampling);
- "dataset": a dataset of --dataset-gb GB in chunks of --chunk-hours hours per variable, and a
  small random-weight decodable model on its grid;
- "demo": the demo's model and dataset (after `make demo`) used as a model of one's own, and
  the default config (the demo, built by the workflow) in the repository.

For each, in fresh processes: `snakemake -n` and, with a dataset, `snakemake -n evaluate`
(decoding and scoring planned: the dataset's truth is fingerprinted); and a generation job
(scripts/generate.py, T = 12, 2 ddim steps). With --before <checkout>, the same runs of that
checkout (its Snakefile, scripts and src/ on PYTHONPATH), interleaved, give after / before.
Absolute times on a shared machine: each is the best of --repeats.
"""

import json
import math
import os
import shutil
import sys
import tempfile
from functools import partial
from pathlib import Path

import yaml
from common import OUTPUT, PYTHON, REPO, best_of, parser, record, run_command

SNAKEMAKE = str(Path(PYTHON).with_name("snakemake"))
ROOT = OUTPUT / "fingerprints"
SETTINGS = {
    "model_target": "best", "sampler": "ddim", "sampler_options": {}, "steps": 2,
    "precision": "float32", "overlap": 4, "stitch": "symmetric", "seed": 0,
}  # fmt: skip
DEMO_MODEL = REPO / "resources/demo/autoencoders/ae/0/latents/demo/denoisers/denoiser/0"
DEMO_DATASET = REPO / "resources/demo/era5_demo.zarr"
GRID = (128, 256)


def big_weights_model(gigabytes: float) -> Path:
    """A denoiser with a weights file of about `gigabytes` GB (made once)."""
    from skyquilt_testing.models import write_random_model

    root = ROOT / f"weights_{gigabytes:g}gb"
    model = root / "autoencoders/ae/0/latents/dump/denoisers/denoiser/0"
    if not (model / "best.safetensors").exists():
        # One 3x3x3 convolution of hidden^2 weights; GroupNorm wants multiples of 8.
        hidden = 8 * round(math.sqrt(gigabytes * 1e9 / 4 / 27) / 8)
        write_random_model(root, latent_shape=(2, 1, 1), hidden_channels=hidden, blocks=1)
    return model


def big_dataset(gigabytes: float, chunk_hours: int) -> tuple[Path, Path]:
    """A dataset of about `gigabytes` GB on GRID, chunked by `chunk_hours`, and a decodable
    model on its grid (made once)."""
    import dask.array
    import numpy as np
    import torch
    import xarray as xr
    from skyquilt_testing.decoding import (
        install_autoencoder,
        random_autoencoder,
        synthetic_dataset,
    )
    from skyquilt_testing.models import write_random_model

    from skyquilt.demo.dataset import LEVEL_HPA, VARIABLES, latitudes, longitudes

    path = ROOT / f"dataset_{gigabytes:g}gb_{chunk_hours}h.zarr"
    model = ROOT / "dataset_model/autoencoders/ae/0/latents/dump/denoisers/denoiser/0"
    latent = (2, GRID[0] // 4, GRID[1] // 4)
    if not model.exists():
        write_random_model(model.parents[7], latent_shape=latent)
        small = synthetic_dataset("2000-01-01", 24, GRID)
        install_autoencoder(
            model, random_autoencoder(small), torch.zeros(latent), torch.ones(latent)
        )
    if path.exists():
        return path, model
    hours = int(gigabytes * 1e9 / (4 * len(VARIABLES) * GRID[0] * GRID[1]))
    hours -= hours % chunk_hours
    shape, chunks = (hours, 1, *GRID), (chunk_hours, 1, *GRID)
    data = {
        name: (
            ("time", "level", "latitude", "longitude"),
            dask.array.random.default_rng(index)
            .standard_normal(shape, chunks=chunks)
            .astype(np.float32),
            attrs,
        )
        for index, (name, attrs) in enumerate(VARIABLES.items())
    }
    coords = {
        "time": np.datetime64("1999-01-01", "ns") + np.arange(hours) * np.timedelta64(1, "h"),
        "level": ("level", np.array([LEVEL_HPA])),
        "latitude": ("latitude", latitudes(GRID[0])),
        "longitude": ("longitude", longitudes(GRID[1])),
    }
    xr.Dataset(data, coords).to_zarr(path, zarr_format=2, consolidated=True)
    return path, model


def workdir(name: str, model: Path, dataset: Path | None) -> Path:
    """A run directory with a tiny config of `model` (and `dataset`)."""
    directory = ROOT / "runs" / name
    directory.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config.update(
        model_path=str(model), trajectory_sizes="12", num_samples_per_date=2,
        start_dates=["2000-04-03 0h"], diffusion={"num_steps": 2, "sampler": {"type": "ddim"}},
        precision="float32", blanket_overlap=4,
    )  # fmt: skip
    config["hardware"] = {"backend": "local", "gen": {"cpus": 1}, "aggregate": {"cpus": 1}}
    config.pop("dataset", None)
    if dataset is not None:
        config["dataset"] = str(dataset)
    (directory / "config.yaml").write_text(yaml.safe_dump(config))
    return directory


def environment(checkout: Path, cache: Path) -> dict:
    return {"PYTHONPATH": str(checkout / "src"), "XDG_CACHE_HOME": str(cache)}


def dry_run(
    checkout: Path,
    cache: Path,
    directory: Path,
    targets: tuple[str, ...] = (),
    configfile: Path | None = None,
) -> None:
    configfile = configfile or directory / "config.yaml"
    command = [SNAKEMAKE, "--snakefile", str(checkout / "Snakefile"), "--directory"]
    command += [str(directory), "--configfile", str(configfile), "-n", *targets]
    run_command(command, cwd=directory, env=environment(checkout, cache))


def generation(checkout: Path, cache: Path, model: Path) -> None:
    output = Path(tempfile.mkdtemp(dir=ROOT)) / "member.zarr"
    settings = json.dumps({**SETTINGS, "model_path": str(model)})
    command = [PYTHON, str(checkout / "scripts/generate.py"), "--settings", settings]
    command += ["--size", "12", "--date", "2000-04-03T00", "--member", "0"]
    command += ["--output", str(output), "--threads", "1"]
    run_command(command, env=environment(checkout, cache))
    shutil.rmtree(output.parent)


def timed(name: str, checkouts: dict[str, Path], repeats: int, run) -> dict[str, float]:
    """Best seconds of `run(checkout, cache)` for each checkout, with a new (cold) cache each
    time and with a filled (warm) one."""
    warm = {label: Path(tempfile.mkdtemp(dir=ROOT)) for label in checkouts}
    for label, checkout in checkouts.items():
        run(checkout, warm[label])  # fills the cache

    def cold(checkout: Path):
        return lambda: run(checkout, Path(tempfile.mkdtemp(dir=ROOT)))

    functions, labels = [], []
    for label, checkout in checkouts.items():
        functions += [cold(checkout), lambda c=checkout, w=warm[label]: run(c, w)]
        labels += [f"{label} cold", f"{label} warm"]
    times = dict(zip(labels, best_of(repeats, *functions), strict=True))
    print(f"{name}: " + ", ".join(f"{label} {seconds:.2f} s" for label, seconds in times.items()))
    return times


def cases(arguments) -> dict:
    """name -> (run function of (checkout, cache), inputs) for every measurement asked for."""
    found = {}
    if arguments.weights_gb:
        model = big_weights_model(arguments.weights_gb)
        directory = workdir("weights", model, None)
        inputs = {"weights_gb": arguments.weights_gb}
        found["weights: snakemake -n"] = (partial(dry_run, directory=directory), inputs)
        found["weights: generation job"] = (partial(generation, model=model), inputs)
    if arguments.dataset_gb:
        dataset, model = big_dataset(arguments.dataset_gb, arguments.chunk_hours)
        directory = workdir("dataset", model, dataset)
        files = sum(len(files) for _, _, files in os.walk(dataset))
        inputs = {"dataset_gb": arguments.dataset_gb, "files": files}
        found["dataset: snakemake -n evaluate"] = (
            partial(dry_run, directory=directory, targets=("evaluate",)), inputs
        )  # fmt: skip
    if arguments.demo and DEMO_MODEL.exists():
        directory = workdir("demo", DEMO_MODEL, DEMO_DATASET)
        found["demo (own model): snakemake -n"] = (partial(dry_run, directory=directory), {})
        found["demo (own model): snakemake -n evaluate"] = (
            partial(dry_run, directory=directory, targets=("evaluate",)), {}
        )  # fmt: skip
        found["demo (own model): generation job"] = (partial(generation, model=DEMO_MODEL), {})
        found["demo (default config): snakemake -n"] = (
            partial(dry_run, directory=REPO, configfile=REPO / "config/config.yaml"), {}
        )  # fmt: skip
    return found


def main() -> None:
    arguments = parser(__doc__)
    arguments.add_argument("--weights-gb", type=float, default=2.0)
    arguments.add_argument("--dataset-gb", type=float, default=5.0)
    arguments.add_argument("--chunk-hours", type=int, default=8)
    arguments.add_argument("--demo", action="store_true", help="also the demo (make demo first)")
    arguments.add_argument("--before", type=Path, help="a checkout to compare with")
    arguments.add_argument("--repeats", type=int, default=3)
    arguments.add_argument("--clean", action="store_true", help="remove the inputs afterwards")
    arguments = arguments.parse_args()
    if arguments.quick:
        arguments.weights_gb, arguments.dataset_gb, arguments.repeats = 0.01, 0.05, 1
    checkouts = {"after": REPO, **({"before": arguments.before} if arguments.before else {})}
    ROOT.mkdir(parents=True, exist_ok=True)
    try:
        for name, (run, inputs) in cases(arguments).items():
            times = timed(name, checkouts, arguments.repeats, run)
            if arguments.before:
                numbers = {label: round(value, 3) for label, value in times.items()}
                inputs = {**inputs, "before": arguments.before.name}
                for state in ("cold", "warm"):
                    ratio = times[f"after {state}"] / times[f"before {state}"]
                    quantity = f"{name}, after / before ({state} fingerprint cache)"
                    record(
                        arguments, "fingerprint_cost", quantity, ratio, "", None, inputs, numbers
                    )
    finally:
        if arguments.clean:
            shutil.rmtree(ROOT, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "tests" / "support"))
    main()

"""Decode memory: peak resident memory decoding a member of T = 24 vs T = 240 states.

Issue 7, point 5. skyquilt.jobs.decode.decode_member decodes one shard in a fresh process that
reports its own peak resident memory (VmHWM). Decoding streams a block of states at a
time, so the peak should not grow with T. Target: peak(240) / peak(24) <= 1.25.

The decodable world is the demo's (model, autoencoder, dataset) when it is built or given
with --model-path/--dataset; otherwise a random-weight demo autoencoder on a 256 x 512 grid
(3 variables: 1.5 MB of fields per state, 377 MB for T = 240, enough to show if a whole
trajectory were held in memory), made with the decode tests' fixture. The shards hold
random standardised latents: memory does not depend on their values.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from common import (
    DEMO_MODEL,
    OUTPUT,
    PYTHON,
    REPO,
    parser,
    record,
    reporting_peak,
    run_command,
    run_config,
)
from skyquilt_testing.decoding import install_autoencoder, random_autoencoder, synthetic_dataset

from skyquilt.io.shards import write_shard
from skyquilt.models.config import ModelDirectory
from skyquilt.sampling.timestamps import trajectory_times

TARGET = 1.25
START = "2000-04-03T00"
DECODE = reporting_peak(
    """
import json, sys, time
from skyquilt.jobs.decode import decode_member
shard, model, dataset, output = json.loads(sys.argv[1])
began = time.perf_counter()
decode_member(shard, model, dataset, output)
print(json.dumps({"seconds": time.perf_counter() - began, "peak_mb": peak_mb()}))
"""
)


def synthetic_world(root: Path, grid: tuple[int, int]) -> tuple[Path, Path]:
    """(model_path, dataset_path) of a random decodable world on `grid`, made once."""
    from skyquilt.demo.dataset import write_dataset

    model_path = root / "autoencoders/ae/0/latents/dump/denoisers/denoiser/0"
    dataset_path = root / "dataset.zarr"
    if ModelDirectory(model_path).stats_file.is_file() and dataset_path.exists():
        return model_path, dataset_path
    dataset = synthetic_dataset("2000-04-01", 24, grid)
    write_dataset(dataset, dataset_path, ("2000-04-01", "2000-04-02"))
    autoencoder = random_autoencoder(dataset, latent_channels=4, downsamplings=2)
    shape = autoencoder.latent_shape
    install_autoencoder(model_path, autoencoder, torch.zeros(shape), torch.ones(shape))
    return model_path, dataset_path


def latent_shape(model_path: Path) -> tuple[int, ...]:
    """The latent shape (C, h, w) of the statistics a model's decoding uses."""
    import safetensors.torch

    stats = safetensors.torch.load_file(ModelDirectory(model_path).stats_file)
    return tuple(stats["mean"].shape)


def decode_once(shard: Path, model: Path, dataset: Path, output: Path) -> tuple[float, float]:
    """Peak RSS (MB) and in-process decode seconds of one member, in a fresh process."""
    shutil.rmtree(output, ignore_errors=True)
    job = json.dumps([str(shard), str(model), str(dataset), str(output)])
    _, printed = run_command([PYTHON, "-c", DECODE, job])
    shutil.rmtree(output)
    measured = json.loads(printed.splitlines()[-1])
    return measured["peak_mb"], measured["seconds"]


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--dataset", type=Path, default=None)
    arguments.add_argument("--sizes", type=int, nargs=2, default=[24, 240])
    arguments.add_argument("--repeats", type=int, default=1)
    arguments = arguments.parse_args()
    try:
        import skyquilt.jobs.decode  # noqa: F401
    except ImportError:
        print("decode_memory: skipped, skyquilt.jobs.decode.decode_member does not exist yet")
        return
    small, large = (8, 24) if arguments.quick else arguments.sizes
    root = OUTPUT / "decode_memory"
    demo = arguments.model_path or (DEMO_MODEL if (DEMO_MODEL / "config.yaml").is_file() else None)
    if demo is not None:
        config = run_config(arguments)
        model, dataset = Path(demo), arguments.dataset or REPO / config["dataset"]
        world = "demo" if model.resolve() == DEMO_MODEL.resolve() else str(model)
    else:
        grid = (32, 64) if arguments.quick else (256, 512)
        model, dataset = synthetic_world(root / f"world-{grid[0]}x{grid[1]}", grid)
        world = f"random autoencoder, grid {grid[0]}x{grid[1]}"
    shape = latent_shape(model)
    generator = np.random.default_rng(0)
    peaks, seconds = {}, {}
    for size in (small, large):
        shard = root / f"shards/{'x'.join(map(str, shape))}-{size}.zarr"
        if not shard.exists():
            latent = generator.standard_normal((size, *shape), dtype=np.float32)
            times = trajectory_times(np.datetime64(START, "ns"), size, 1)
            write_shard(shard, latent, times, {"start_date": START, "member": 0})
        runs = [
            decode_once(shard, model, dataset, root / f"decoded-{size}.zarr")
            for _ in range(arguments.repeats)
        ]
        peaks[size] = min(peak for peak, _ in runs)
        seconds[size] = min(wall for _, wall in runs)
    ratio = peaks[large] / peaks[small]
    record(
        arguments,
        "decode_memory",
        f"peak RSS decoding T={large} / T={small}",
        ratio,
        f"<= {TARGET}",
        ratio <= TARGET,
        {"T": [small, large], "latent_shape": list(shape), "world": world,
         "repeats": arguments.repeats},
        {f"peak_{small}_mb": round(peaks[small]), f"peak_{large}_mb": round(peaks[large]),
         f"decode_{small}_s": round(seconds[small], 2),
         f"decode_{large}_s": round(seconds[large], 2)},
    )  # fmt: skip


if __name__ == "__main__":
    main()

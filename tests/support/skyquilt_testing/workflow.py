"""Configs and a real `snakemake` runner for the workflow tests: the seed's example config,
tiny configs that run in seconds on 2 cores, and the tiny demo of .test/config.yaml."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[3]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


# The example of the original generation config; only model_path is changed by the tests.
EXAMPLE_CONFIG = """
model_path: /path/to/project/autoencoders/your_ae/1/latents/wiki/denoisers/your_denoiser/0
model_target: best  # Options: best, last
diffusion:
  num_steps: 64  # Defaults to model's validation denoising steps
  sampler:
    type: lms
    config: {}
trajectory_sizes: "72"
num_samples_per_date: 2
start_dates:
  - "2000-04-03 0h"
  - "2000-04-20 12h"
blanket_overlap: 4  # Overlap between blankets
precision: float16  # Options: float32, float16, bfloat16, null = model training precision
hardware:
  backend: slurm
  account: users
  gpus_per_node: 1
  gen:
    cpus: 8
    ram: 60GB
    time: "6:00"
    partition: a5000
    gpus: 1
  aggregate:
    cpus: 8
    ram: 32GB
    time: "4:00"
    partition: a5000
"""


def example_config(model_path: Path) -> dict:
    config = yaml.safe_load(EXAMPLE_CONFIG)
    config["model_path"] = str(model_path)
    return config


# The consent the tiny configs give: the plug-in backbones of the fault tests
# (skyquilt_testing.backbones) may be imported; no other model code.
TRUSTED_TEST_CODE = ["skyquilt_testing"]


def tiny_config(model_path: Path, **overrides) -> dict:
    """A config that runs in seconds on 2 cores: T = 12, 3 steps, 2 dates x 2 members.

    It trusts the code of skyquilt_testing (TRUSTED_TEST_CODE), so that a model may name
    a plug-in backbone of skyquilt_testing.backbones.
    """
    config = example_config(model_path)
    config.update(
        trust_model_code=list(TRUSTED_TEST_CODE),
        trajectory_sizes="12",
        diffusion={"num_steps": 3, "sampler": {"type": "lms", "config": {}}},
        precision="float32",
        hardware={
            "backend": "local",
            "gen": {"cpus": 1, "ram": "1GB", "time": "10:00"},
            "aggregate": {"cpus": 1, "ram": "1GB", "time": "10:00"},
        },
    )
    config.update(overrides)
    return config


# The on-request sections of a tiny config, as the report schema's defaults would fill them in
# (render's fields and frames per job chosen for the product tests).
ON_REQUEST = {
    "decode": {"states_per_chunk": 8},
    "render": {
        "lead_hours": [0, 6, 11, 48],
        "quantile": 0.01,
        "gallery_members": 4,
        "animation": {"fps": 4, "mp4": False, "frames_per_job": 5, "members": 1},
        "fields": [{"variable": "geopotential", "level": 500}, {"variable": "t2m"}],
    },
    "evaluate": {"fields": None, "climatology_period": None},
}


def write_config(directory: Path, config: dict) -> Path:
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_snakemake(workdir: Path, *arguments: str, check: bool = True, env: dict | None = None):
    """Run the real snakemake on the repository's Snakefile in `workdir`."""
    command = [
        str(SNAKEMAKE),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--configfile",
        str(workdir / "config.yaml"),
        "--directory",
        str(workdir),
        *arguments,
    ]
    result = subprocess.run(
        command,
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def copy_run(finished_run: Path, tmp_path: Path) -> Path:
    """A copy of a finished run in `tmp_path / "run"`: its outputs, their modification times and
    Snakemake's metadata, so that a test may change it without touching the original."""
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy, symlinks=True)
    return copy


def planned_jobs(output: str) -> dict[str, int]:
    """Job counts per rule from the 'Job stats' table of a dry run."""
    counts: dict[str, int] = {}
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("Job stats:"):
            for row in lines[index + 3 :]:
                parts = row.split()
                if len(parts) != 2 or parts[0] == "total":
                    break
                counts[parts[0]] = int(parts[1])
            break
    return counts


# The tiny demo (.test/config.yaml, a config a user can run too): the whole demo chain builds
# in seconds (the denoiser's coarse model too), then samples 2 members of T = 8, composed
# two_scale.
TEST_CONFIG = REPO / ".test" / "config.yaml"
TINY_DEMO = yaml.safe_load(TEST_CONFIG.read_text())["demo"]
DEMO = "resources/demo"
MODEL = f"{DEMO}/autoencoders/ae/0/latents/demo/denoisers/denoiser/0"


def tiny_demo_config(**overrides) -> dict:
    """The tiny test config (.test/config.yaml): the workflow builds the tiny demo model, then
    samples 2 members of T = 8 from it; `overrides` replace top-level keys."""
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config.update(overrides)
    return config


def tiny_latent_dump(
    root: Path, latent_channels: int, latent_dir: Path, held_out: tuple[str, str]
) -> Path:
    """A 2-day demo dataset on a 16 x 32 grid, an untrained autoencoder with
    `latent_channels` latent channels in root / "ae", and their latent dump in `latent_dir`.

    Returns the dataset's path.
    """
    from skyquilt.demo.dataset import simulate_dataset, write_dataset
    from skyquilt.demo.latents import dump_latents
    from skyquilt.models.autoencoder import Autoencoder, save_autoencoder
    from skyquilt.planning.demo_settings import DatasetSettings

    dataset_path = root / "era5_demo.zarr"
    settings = DatasetSettings.from_config(
        {"start": "2000-04-01", "days": 2, "grid": [16, 32], "spinup_days": 0}
    )
    write_dataset(simulate_dataset(settings), dataset_path, held_out)
    torch.manual_seed(0)
    variables = ["geopotential", "u_component_of_wind", "v_component_of_wind"]
    autoencoder = Autoencoder(
        variables, (16, 32), latent_channels, 4, 2, [5.4e4, 5.0, 0.0], [3e3, 13.0, 12.0]
    )
    save_autoencoder(autoencoder, root / "ae")
    dump_latents(dataset_path, root / "ae", latent_dir, held_out)
    return dataset_path

"""On request only, and bad requests fail before any job: dry runs of the real snakemake.

A tiny world: the random-weight test denoiser (latent (2, 4, 8), K = 8), a random demo
autoencoder decoding to 16 x 32 in its latent_dir/ae, and a synthetic dataset in the demo's
WeatherBench2 layout (2000-03-25 to 2000-05-03); T = 12, 2 start dates x 2 members.
"""

from pathlib import Path

import pytest
import torch
import xarray as xr
from skyquilt_testing.decoding import (
    install_autoencoder,
    random_autoencoder,
    write_synthetic_dataset,
)
from skyquilt_testing.models import write_random_model
from skyquilt_testing.workflow import planned_jobs, run_snakemake, tiny_config, write_config

SIZE_DIR = "results/prior/default/12h"
DATES = ("2000-04-03T00", "2000-04-20T12")
RENDER = {
    "fields": [{"variable": "geopotential", "level": 500}],
    "lead_hours": [0, 6, 11],
    "animation": {"frames_per_job": 6, "members": 1},
}


def make_world(root: Path) -> tuple[Path, Path]:
    """The model directory (with latent_dir/ae) and the dataset of a tiny world under `root`."""
    model_path = write_random_model(root / "models")
    dataset = write_synthetic_dataset(root / "era5.zarr")
    autoencoder = random_autoencoder(xr.open_zarr(dataset))
    install_autoencoder(model_path, autoencoder, torch.zeros(2, 4, 8), torch.ones(2, 4, 8))
    return model_path, dataset


def make_workdir(directory: Path, world: tuple[Path, Path], **overrides) -> Path:
    """A workdir whose config.yaml runs the tiny world (with `overrides`)."""
    model_path, dataset = world
    directory.mkdir(parents=True, exist_ok=True)
    config = tiny_config(model_path, dataset=str(dataset), render=RENDER) | overrides
    write_config(directory, config)
    return directory


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny world that no test changes."""
    return make_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def fresh(world, tmp_path_factory) -> Path:
    """A workdir where nothing has run (dry runs only)."""
    return make_workdir(tmp_path_factory.mktemp("fresh") / "work", world)


def test_nothing_is_decoded_unless_asked(fresh):
    result = run_snakemake(fresh, "-n")
    assert planned_jobs(result.stdout) == {"aggregate": 1, "all": 1, "generate": 4}


def test_render_and_evaluate_plan_split_frames_and_one_evaluation(fresh):
    result = run_snakemake(fresh, "-n", "render", "evaluate")
    assert planned_jobs(result.stdout) == {
        "animation": 2,
        "decode": 4,
        "evaluate": 1,
        "evaluation": 1,
        "frames": 4,  # 12 states, 6 per job, one animated member per start date
        "gallery": 2,
        "generate": 4,
        "render": 1,
    }


def test_asking_for_one_decoded_member_decodes_only_it(fresh):
    result = run_snakemake(fresh, "-n", f"{SIZE_DIR}/decoded/{DATES[1]}/1.zarr")
    assert planned_jobs(result.stdout) == {"decode": 1, "generate": 1}


def config_error(workdir: Path, *targets: str) -> str:
    result = run_snakemake(workdir, "-n", *targets, check=False)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "skyquilt config error" in line]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


def test_rendering_dates_without_ground_truth_fails_naming_them_and_the_range(world, tmp_path):
    workdir = make_workdir(tmp_path, world, start_dates=["2000-04-03 0h", "2000-05-03 18h"])
    # Generation alone needs no truth.
    assert planned_jobs(run_snakemake(workdir, "-n").stdout)["generate"] == 4
    line = config_error(workdir, "render")
    assert "2000-05-03T18 (T = 12)" in line and "2000-04-03T00" not in line
    assert "covers 2000-03-25T00 to 2000-05-03T23" in line


def test_a_missing_decoder_or_statistics_file_fails_naming_its_path(tmp_path):
    workdir = make_workdir(tmp_path / "work", make_world(tmp_path))
    latent_dir = tmp_path / "models/autoencoders/ae/0/latents/dump"
    (latent_dir / "stats.safetensors").unlink()
    # Generation does not decode.
    assert planned_jobs(run_snakemake(workdir, "-n").stdout)["generate"] == 4
    line = config_error(workdir, f"{SIZE_DIR}/decoded/{DATES[0]}/0.zarr")
    assert f"latent statistics file {latent_dir / 'stats.safetensors'} is missing" in line
    (latent_dir / "ae/weights.safetensors").unlink()
    line = config_error(workdir, "evaluate")
    assert f"decoder weights file {latent_dir / 'ae/weights.safetensors'} is missing" in line


def test_a_climatology_period_overlapping_the_evaluated_dates_fails(world, tmp_path):
    period = ["2000-03-25", "2000-04-03"]
    workdir = make_workdir(tmp_path, world, evaluate={"climatology_period": period})
    line = config_error(workdir, "evaluate")
    assert "evaluate.climatology_period" in line and "2000-04-03T00" in line


def test_rendering_without_fields_fails_naming_the_key(world, tmp_path):
    workdir = make_workdir(tmp_path, world, render={"lead_hours": [0]})
    assert "render.fields" in config_error(workdir, "render")

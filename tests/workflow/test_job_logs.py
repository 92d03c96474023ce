"""Every job's failure is in its own log: the rule's log file ends with the error and its
traceback, for every kind of rule (the verify rule: tests/workflow/test_verify.py).

Real snakemake; each failure comes through a public door: a plug-in backbone that fails
(generate), a damaged shard (aggregate, decode), a broken dataset (gallery, animation,
frames, evaluation, demo autoencoder) and a damaged decoded member (statistics).
"""

import shutil
from pathlib import Path

import pytest
import torch
import xarray as xr
from skyquilt_testing.backbones import FAIL_VARIABLE, FAILURE_MESSAGE, plug_in
from skyquilt_testing.decoding import (
    install_autoencoder,
    random_autoencoder,
    write_synthetic_dataset,
)
from skyquilt_testing.models import write_random_model
from skyquilt_testing.workflow import (
    DEMO,
    run_snakemake,
    tiny_config,
    tiny_demo_config,
    write_config,
)

SIZE_DIR = "results/prior/default/12h"
LOGS = "results/logs/default"
DATE = "2000-04-03T00"
FIELD = "geopotential-500"


def shard(member: int) -> str:
    return f"{SIZE_DIR}/shards/{DATE}/{member}.zarr"


def decoded(member: int) -> str:
    return f"{SIZE_DIR}/decoded/{DATE}/{member}.zarr"


def spoil_chunks(store: Path, variables: list[str]) -> None:
    """Overwrite every chunk of `variables` in a zarr store with bytes no codec reads."""
    for variable in variables:
        for chunk in (store / variable).iterdir():
            if not chunk.name.startswith("."):
                chunk.write_bytes(b"not a chunk")


def assert_ends_with_traceback(log: Path, error: str, result=None) -> None:
    """The log exists and ends with a traceback whose last line contains `error`."""
    output = result.stdout[-3000:] + result.stderr[-3000:] if result else ""
    assert log.is_file(), f"{log} was not written:\n{output}"
    lines = log.read_text().rstrip().splitlines()
    assert lines, f"{log} is empty"
    assert any(line.startswith("Traceback (most recent call last)") for line in lines), (
        f"{log} has no traceback:\n" + "\n".join(lines[-20:])
    )
    assert error in lines[-1], f"{log} does not end with {error!r}:\n" + "\n".join(lines[-20:])


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, Path]:
    """A decodable model with the failing plug-in backbone, and the synthetic dataset."""
    root = tmp_path_factory.mktemp("job_logs")
    model = plug_in(write_random_model(root / "model"))
    dataset = write_synthetic_dataset(root / "era5.zarr")
    autoencoder = random_autoencoder(xr.open_zarr(dataset))
    install_autoencoder(model, autoencoder, torch.zeros(2, 4, 8), torch.ones(2, 4, 8))
    return model, dataset


def config_of(model: Path, dataset: Path, frames_per_job: int | None) -> dict:
    return tiny_config(
        model,
        start_dates=["2000-04-03 0h"],
        dataset=str(dataset),
        render={
            "fields": [{"variable": "geopotential", "level": 500}],
            "lead_hours": [0, 6],
            "animation": {"mp4": False, "frames_per_job": frames_per_job},
        },
        evaluate={"fields": [{"variable": "geopotential", "level": 500}]},
    )


def test_every_rule_kind_ends_its_log_with_the_traceback(world, tmp_path):
    model, dataset = world
    run = tmp_path / "run"
    run.mkdir()
    dataset = Path(shutil.copytree(dataset, tmp_path / "era5.zarr"))
    write_config(run, config_of(model, dataset, frames_per_job=None))

    # generate: the plug-in backbone fails at its first call for member 1.
    env = {FAIL_VARIABLE: f"{shard(1)}@1"}
    result = run_snakemake(run, "--cores", "2", "--keep-going", check=False, env=env)
    assert result.returncode != 0
    assert_ends_with_traceback(run / LOGS / f"generate/12h/{DATE}/1.log", FAILURE_MESSAGE)

    # aggregate and decode: member 0's shard is damaged after it was made.
    (chunk,) = [p for p in (run / shard(0) / "latent").iterdir() if not p.name.startswith(".")]
    chunk.write_bytes(chunk.read_bytes()[:10])
    targets = (f"{SIZE_DIR}/trajectories.zarr", decoded(0))
    result = run_snakemake(run, "--cores", "2", "--keep-going", *targets, check=False)
    assert result.returncode != 0
    assert_ends_with_traceback(run / LOGS / "aggregate/12h.log", "ShardError: shard")
    assert_ends_with_traceback(run / LOGS / f"decode/12h/{DATE}/0.log", "ShardError: shard")

    # Repaired, decoded; then the dataset and one decoded member break.
    shutil.rmtree(run / shard(0))
    run_snakemake(run, "--cores", "2", decoded(0), decoded(1))
    spoil_chunks(dataset, ["geopotential", "u_component_of_wind", "v_component_of_wind"])
    spoil_chunks(run / decoded(1), ["geopotential"])
    result = run_snakemake(
        run, "--cores", "2", "--keep-going", "render", "evaluate", "statistics", check=False
    )
    assert result.returncode != 0
    render = run / LOGS / "render/12h"
    for log in (
        render / f"gallery/{DATE}/{FIELD}.log",
        render / f"animation/{DATE}/0/{FIELD}.log",
        run / LOGS / "evaluate/12h.log",
        run / LOGS / f"statistics/12h/{DATE}.log",
    ):
        assert_ends_with_traceback(log, "Error", result)

    # frames: the same broken dataset, with the animation's frames split over jobs.
    write_config(run, config_of(model, dataset, frames_per_job=6))
    result = run_snakemake(run, "--cores", "2", "--keep-going", "render", check=False)
    assert result.returncode != 0
    assert_ends_with_traceback(render / f"frames/{DATE}/0/{FIELD}-0.log", "Error")


def test_a_demo_job_ends_its_log_with_the_traceback(tmp_path):
    """The demo autoencoder trains on a dataset that broke after it was made."""
    write_config(tmp_path, tiny_demo_config())
    run_snakemake(tmp_path, "--cores", "2", f"{DEMO}/era5_demo.zarr")
    variables = ["geopotential", "u_component_of_wind", "v_component_of_wind"]
    spoil_chunks(tmp_path / DEMO / "era5_demo.zarr", variables)
    result = run_snakemake(tmp_path, "--cores", "2", check=False)
    assert result.returncode != 0
    assert_ends_with_traceback(tmp_path / DEMO / "logs/autoencoder.log", "Error")

"""End to end: `snakemake --cores 2 statistics` generates, decodes and writes the ensemble
statistics of every (size, start date) as WeatherBench2-layout zarrs; their values equal numpy
over the decoded members; a bad quantile fails the dry run with one line.

The tiny world of test_render_evaluate_requests: the random-weight test denoiser, a random demo
autoencoder decoding to 16 x 32 and a synthetic dataset; T = 12, 2 start dates x 2 members.
"""

import re
import shutil
from pathlib import Path

import numpy as np
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

from skyquilt.demo.dataset import VARIABLES

SIZE_DIR = "results/prior/default/12h"
DATES = ("2000-04-03T00", "2000-04-20T12")
QUANTILES = [0.1, 0.5, 0.9]


def make_workdir(root: Path, **overrides) -> Path:
    """A tiny world under `root` and a workdir whose config.yaml runs it."""
    model_path = write_random_model(root / "models")
    dataset = write_synthetic_dataset(root / "era5.zarr")
    autoencoder = random_autoencoder(xr.open_zarr(dataset))
    install_autoencoder(model_path, autoencoder, torch.zeros(2, 4, 8), torch.ones(2, 4, 8))
    workdir = root / "work"
    workdir.mkdir()
    config = tiny_config(model_path, dataset=str(dataset), statistics={"quantiles": QUANTILES})
    write_config(workdir, config | overrides)
    return workdir


@pytest.fixture(scope="module")
def computed(tmp_path_factory) -> Path:
    """A workdir after `snakemake --cores 2 statistics`."""
    workdir = make_workdir(tmp_path_factory.mktemp("statistics"))
    planned = planned_jobs(run_snakemake(workdir, "-n", "statistics").stdout)
    assert planned == {"decode": 4, "ensemble_statistics": 2, "generate": 4, "statistics": 1}
    run_snakemake(workdir, "--cores", "2", "statistics")
    return workdir


def test_statistics_of_every_start_date_are_written(computed):
    made = sorted(path.name for path in (computed / SIZE_DIR / "statistics").iterdir())
    assert made == [f"{date}.zarr" for date in DATES]
    for date in DATES:
        log = computed / f"results/logs/default/statistics/12h/{date}.log"
        assert "members/s" in log.read_text()


@pytest.mark.parametrize("date", DATES)
def test_values_equal_numpy_over_the_decoded_members(computed, date):
    path = computed / SIZE_DIR / f"statistics/{date}.zarr"
    decoded = [
        xr.open_zarr(computed / SIZE_DIR / f"decoded/{date}/{member}.zarr") for member in (0, 1)
    ]
    tree = xr.open_datatree(path, engine="zarr")
    assert tree.attrs["members"] == 2 and tree.attrs["quantiles"] == QUANTILES
    for variable in VARIABLES:
        values = np.stack([member[variable].values[0, 0] for member in decoded]).astype(float)
        expected = {
            "mean": values.mean(axis=0),
            "std": values.std(axis=0, ddof=1),
            "min": values.min(axis=0),
            "max": values.max(axis=0),
            "quantile": np.quantile(values, QUANTILES, axis=0),
        }
        for group, want in expected.items():
            got = xr.open_zarr(path, group=group)[variable]
            assert got.sizes["prediction_timedelta"] == 12
            np.testing.assert_allclose(
                got.values[0], want, rtol=1e-6, atol=1e-6 * np.abs(want).max()
            )
    mean = xr.open_zarr(path, group="mean")
    assert mean.time.values[0] == np.datetime64(date, "ns")
    np.testing.assert_array_equal(mean.latitude, decoded[0].latitude)


def test_statistics_are_cached_and_kept_up_to_date_by_all(computed):
    assert "Nothing to be done" in run_snakemake(computed, "-n", "statistics").stdout
    assert planned_jobs(run_snakemake(computed, "-n").stdout) == {"aggregate": 1, "all": 1}


def truncate_a_chunk(array: Path) -> None:
    """Cut one chunk file of a zarr array in half; its metadata stays intact."""
    chunks = [path for path in array.rglob("*") if path.is_file() and path.name != "zarr.json"]
    chunk = min(path for path in chunks if not path.name.startswith("."))
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])


def test_a_job_failing_mid_write_leaves_no_output_and_its_log_ends_with_the_traceback(
    computed, tmp_path
):
    workdir = tmp_path / "work"
    shutil.copytree(computed, workdir)
    # Member 1 of the first date keeps its metadata, so the job passes its checks of the
    # members and starts writing; it fails when it reads the damaged chunk.
    truncate_a_chunk(workdir / SIZE_DIR / f"decoded/{DATES[0]}/1.zarr/geopotential")
    target = f"{SIZE_DIR}/statistics/{DATES[0]}.zarr"
    result = run_snakemake(workdir, "--cores", "1", "--forcerun", target, target, check=False)
    assert result.returncode != 0
    log = (workdir / f"results/logs/default/statistics/12h/{DATES[0]}.log").read_text()
    assert "computing the statistics of geopotential" in log, "failed before writing:\n" + log
    assert "Traceback" in log
    assert re.match(r"\w+(Error|Exception): ", log.rstrip().splitlines()[-1]), log[-2000:]
    assert not (workdir / target).exists()
    left = [path.name for path in (workdir / SIZE_DIR / "statistics").iterdir()]
    assert left == [f"{DATES[1]}.zarr"], f"left behind: {left}"


@pytest.mark.parametrize(
    ("quantiles", "message"),
    [
        ([0.5, 1.5], "statistics.quantiles.1: 1.5 is greater than or equal to the maximum of 1"),
        ([0.0], "statistics.quantiles.0: 0.0 is less than or equal to the minimum of 0"),
        ([0.5, 0.5], "statistics.quantiles: [0.5, 0.5] has non-unique elements"),
    ],
)
def test_a_bad_quantile_fails_the_dry_run_with_one_line(tiny_model, tmp_path, quantiles, message):
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = tiny_config(tiny_model, statistics={"quantiles": quantiles})
    write_config(workdir, config)
    result = run_snakemake(workdir, "-n", "statistics", check=False)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "skyquilt config error" in line]
    assert lines == [f"skyquilt config error: {message}"], result.stderr[-2000:]

"""End to end: the real snakemake plans, generates, aggregates and reruns single members."""

import shutil

import numpy as np
import xarray as xr
from skyquilt_testing.workflow import (
    example_config,
    planned_jobs,
    run_snakemake,
    tiny_config,
    write_config,
)

SHARDS = "results/prior/default/12h/shards"


def test_dry_run_of_the_example_config_plans_one_job_per_member(tiny_model, tmp_path):
    write_config(tmp_path, example_config(tiny_model))
    result = run_snakemake(tmp_path, "-n")
    assert planned_jobs(result.stdout) == {"aggregate": 1, "all": 1, "generate": 4}


def test_generation_aggregate_and_rerun_of_one_deleted_member(tiny_model, tmp_path):
    write_config(tmp_path, tiny_config(tiny_model))
    run_snakemake(tmp_path, "--cores", "2")

    merged = xr.open_zarr(tmp_path / "results/prior/default/12h/trajectories.zarr")
    assert dict(merged.sizes) == {
        "start_date": 2,
        "member": 2,
        "time": 12,
        "channel": 2,
        "y": 4,
        "x": 8,
    }
    assert merged["start_date"].values.tolist() == [
        np.datetime64("2000-04-03T00", "ns").astype(int),
        np.datetime64("2000-04-20T12", "ns").astype(int),
    ]
    assert (merged["lead_time"].values == np.arange(12) * np.timedelta64(1, "h")).all()
    assert np.isfinite(merged["latent"].values).all()
    assert merged.attrs["sampler"] == "lms" and merged.attrs["steps"] == 3
    original = merged["latent"].values.copy()
    # Distinct members: every member has its own noise.
    assert not np.allclose(original[0, 0], original[0, 1])

    victim = tmp_path / SHARDS / "2000-04-20T12/1.zarr"
    others = [p for p in (tmp_path / SHARDS).glob("*/*.zarr") if p != victim]
    stamps = {p: (p / ".zattrs").stat().st_mtime_ns for p in others}
    shutil.rmtree(victim)

    plan = run_snakemake(tmp_path, "-n")
    assert planned_jobs(plan.stdout) == {"aggregate": 1, "all": 1, "generate": 1}

    run_snakemake(tmp_path, "--cores", "2")
    rerun = xr.open_zarr(tmp_path / "results/prior/default/12h/trajectories.zarr")
    assert np.array_equal(rerun["latent"].values, original)
    assert {p: (p / ".zattrs").stat().st_mtime_ns for p in others} == stamps
    assert "Nothing to be done" in run_snakemake(tmp_path, "-n").stdout

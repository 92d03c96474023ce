"""Outputs of finished runs, compared: the members and the aggregate of one trajectory size of
a run made on SLURM against a local run of the same config and seeds, bit for bit."""

from pathlib import Path

import numpy as np
import xarray as xr

from skyquilt_testing.workflow import tiny_config

# As many CPUs (torch threads) per job as on the test cluster, so that comparing bit for bit
# tests where the jobs ran, not how many threads summed the floats.
LOCAL_HARDWARE = {"backend": "local", "gen": {"cpus": 1}, "aggregate": {"cpus": 1}}


def one_date_config(model_path: Path, members: int, **overrides) -> dict:
    """The tiny config (T = 12, 3 steps) for one start date, 2000-04-20 12h."""
    return tiny_config(
        model_path, start_dates=["2000-04-20 12h"], num_samples_per_date=members, **overrides
    )


def prior(workdir: Path, size: int) -> Path:
    """Where the members and the aggregate of trajectory size `size` are written."""
    return workdir / "results" / "prior" / "default" / f"{size}h"


def members_of(outputs: Path) -> list[str]:
    """The members written under `outputs` (a `prior` directory), as '<date>/<member>'."""
    shards = outputs / "shards"
    return sorted(str(path.relative_to(shards).with_suffix("")) for path in shards.glob("*/*.zarr"))


def assert_same_member(ours: Path, reference: Path, member: str) -> None:
    """Bit-identical latents and the same provenance (wall time aside)."""
    mine, theirs = (
        xr.open_zarr(outputs / "shards" / f"{member}.zarr") for outputs in (ours, reference)
    )
    assert np.array_equal(mine["latent"].values, theirs["latent"].values), member
    ignore = {"wall_time_s"}
    assert {k: v for k, v in mine.attrs.items() if k not in ignore} == {
        k: v for k, v in theirs.attrs.items() if k not in ignore
    }


def assert_same_outputs(ours: Path, reference: Path) -> None:
    """The same members, each bit-identical, and the same aggregate."""
    assert members_of(ours) == members_of(reference)
    for member in members_of(reference):
        assert_same_member(ours, reference, member)
    mine, theirs = (xr.open_zarr(outputs / "trajectories.zarr") for outputs in (ours, reference))
    assert np.array_equal(mine["latent"].values, theirs["latent"].values)
    assert mine["member"].values.tolist() == theirs["member"].values.tolist()
    assert mine["start_date"].values.tolist() == theirs["start_date"].values.tolist()

"""Shards and the streaming aggregate: round trips, validation and atomic writes."""

import shutil
import tracemalloc

import numpy as np
import pytest
import xarray as xr

from skyquilt.io.atomic import atomic_directory
from skyquilt.io.shards import ShardError, read_shard, write_shard
from skyquilt.io.trajectories import merge_shards

EXPECTED = {"sampler": "lms", "trajectory_size": 6}
DATES = ["2000-04-03T00", "2000-04-20T12"]


def make_shards(directory, members=2, dates=DATES, shape=(6, 2, 4, 8), attrs=EXPECTED):
    shards = {}
    for label in dates:
        times = np.datetime64(label, "ns") + np.arange(shape[0]) * np.timedelta64(1, "h")
        for member in range(members):
            path = directory / "shards" / label / f"{member}.zarr"
            latent = np.random.default_rng(member).standard_normal(shape).astype(np.float32)
            write_shard(path, latent, times, {**attrs, "start_date": label, "member": member})
            shards[(label, member)] = path
    return shards


def expectations(shards, attrs=EXPECTED):
    """What the aggregate checks in each shard: the run's attributes and its own identity."""
    return {
        (label, member): {**attrs, "start_date": label, "member": member}
        for label, member in shards
    }


def aggregate(shards, output, attrs, start_dates, members, progress=False):
    merge_shards(
        shards, output, expectations(shards, attrs), start_dates, members, progress=progress
    )


def test_shard_round_trip_keeps_values_times_and_provenance(tmp_path):
    shards = make_shards(tmp_path, members=1, dates=DATES[:1])
    shard = read_shard(shards[(DATES[0], 0)], expectations(shards)[(DATES[0], 0)])
    assert shard["latent"].dims == ("time", "channel", "y", "x")
    assert shard.attrs["sampler"] == "lms"
    assert shard["time"].values[1] - shard["time"].values[0] == np.timedelta64(1, "h")


def test_aggregate_has_all_members_in_order(tmp_path):
    shards = make_shards(tmp_path)
    output = tmp_path / "trajectories.zarr"
    aggregate(shards, output, EXPECTED, DATES, [0, 1], progress=False)
    merged = xr.open_zarr(output)
    assert dict(merged.sizes) == {
        "start_date": 2,
        "member": 2,
        "time": 6,
        "channel": 2,
        "y": 4,
        "x": 8,
    }
    for (label, member), path in shards.items():
        expected = xr.open_zarr(path)["latent"].values
        actual = merged["latent"].sel(start_date=np.datetime64(label, "ns"), member=member).values
        assert np.array_equal(actual, expected)
    assert merged["valid_time"].values[1, 0] == np.datetime64("2000-04-20T12", "ns")
    assert merged.attrs["members"] == 2


def test_shard_with_another_sampler_is_named(tmp_path):
    shards = make_shards(tmp_path, attrs={**EXPECTED, "sampler": "ddim"})
    with pytest.raises(ShardError, match=r"0\.zarr: attribute 'sampler' is 'ddim'"):
        aggregate(shards, tmp_path / "out.zarr", EXPECTED, DATES, [0, 1], progress=False)


def test_shard_with_a_missing_chunk_is_named(tmp_path):
    shards = make_shards(tmp_path)
    damaged = shards[(DATES[1], 1)]
    for chunk in (damaged / "latent").iterdir():
        if not chunk.name.startswith("."):
            chunk.unlink()
    with pytest.raises(ShardError, match=f"{damaged}.*checksum"):
        aggregate(shards, tmp_path / "out.zarr", EXPECTED, DATES, [0, 1], progress=False)


def test_failed_aggregate_keeps_the_previous_output(tmp_path):
    shards = make_shards(tmp_path)
    output = tmp_path / "trajectories.zarr"
    aggregate(shards, output, EXPECTED, DATES, [0, 1], progress=False)
    before = xr.open_zarr(output)["latent"].values
    shutil.rmtree(shards[(DATES[0], 1)])
    with pytest.raises(ShardError):
        aggregate(shards, output, EXPECTED, DATES, [0, 1], progress=False)
    assert np.array_equal(xr.open_zarr(output)["latent"].values, before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards", "trajectories.zarr"]


def test_failed_write_leaves_nothing_at_the_final_path(tmp_path):
    final = tmp_path / "member.zarr"
    with pytest.raises(RuntimeError), atomic_directory(final) as temporary:
        temporary.mkdir()
        (temporary / "half").write_text("partial")
        raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []


MEMBER_SHAPE = (64, 4, 32, 64)  # 2 MB of float32 per member


def peak_memory_of_aggregate(directory, members):
    shards = make_shards(directory, members=members, dates=DATES[:1], shape=MEMBER_SHAPE)
    tracemalloc.start()
    aggregate(shards, directory / "out.zarr", {}, DATES[:1], list(range(members)), progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_aggregate_memory_does_not_grow_with_members(tmp_path):
    """Streaming: 14 more members add far less than their own 28 MB to the aggregate's peak.

    Holding every member at once would add all of it; what streaming adds is bookkeeping per
    member (a few tens of kB each), so a quarter of the added data separates the two widely.
    """
    few = peak_memory_of_aggregate(tmp_path / "few", 2)
    many = peak_memory_of_aggregate(tmp_path / "many", 16)
    added_data = (16 - 2) * np.prod(MEMBER_SHAPE) * np.dtype(np.float32).itemsize
    assert many - few < 0.25 * added_data, (few, many, added_data)

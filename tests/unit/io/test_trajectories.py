"""check_trajectories: a finished aggregate re-checked, with and without recorded checksums."""

import numpy as np
import pytest
import zarr

from skyquilt.io.shards import ZARR_FORMAT, write_shard
from skyquilt.io.trajectories import CHECKSUMS, TrajectoriesError, check_trajectories, merge_shards

EXPECTED = {"sampler": "lms", "trajectory_size": 6}
DATES = ["2000-04-03T00", "2000-04-20T12"]
MEMBERS = [0, 1]


@pytest.fixture
def store(tmp_path):
    """An aggregate of 2 dates x 2 members; the checksums of its shards."""
    shards, expected, checksums = {}, {}, {}
    for label in DATES:
        times = np.datetime64(label, "ns") + np.arange(6) * np.timedelta64(1, "h")
        for member in MEMBERS:
            path = tmp_path / "shards" / label / f"{member}.zarr"
            latent = np.random.default_rng([member, len(shards)]).standard_normal((6, 2, 4, 8))
            identity = {"start_date": label, "member": member}
            write_shard(path, latent, times, {**EXPECTED, **identity})
            shards[(label, member)] = path
            expected[(label, member)] = {**EXPECTED, **identity}
            checksums[(label, member)] = zarr.open_group(path, mode="r").attrs["checksum"]
    output = tmp_path / "trajectories.zarr"
    merge_shards(shards, output, expected, DATES, MEMBERS, progress=False)
    return output, checksums


def drop_checksums(output):
    """An aggregate as skyquilt wrote them before they carried checksums."""
    group = zarr.open_group(output, mode="r+", zarr_format=ZARR_FORMAT)
    del group.attrs[CHECKSUMS]
    zarr.consolidate_metadata(output, zarr_format=ZARR_FORMAT)


def flip(output, chunk="1.0.0.0.0.0"):
    path = output / "latent" / chunk
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_intact_aggregate_passes_and_records_every_members_checksum(store):
    output, checksums = store
    check_trajectories(output, EXPECTED, DATES, MEMBERS, (2, 4, 8))
    recorded = zarr.open_group(output, mode="r").attrs[CHECKSUMS]
    assert recorded == [[checksums[(label, m)] for m in MEMBERS] for label in DATES]


@pytest.mark.parametrize("old", [False, True], ids=["with_checksums", "older_without"])
@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_damaged_member_is_named(store, old, damage):
    output, checksums = store
    if old:
        drop_checksums(output)
        check_trajectories(output, EXPECTED, DATES, MEMBERS, (2, 4, 8), checksums)
    chunk = output / "latent" / "1.0.0.0.0.0"
    if damage == "flip":
        flip(output)
    elif damage == "truncate":
        chunk.write_bytes(chunk.read_bytes()[:7])
    else:
        chunk.unlink()
    with pytest.raises(TrajectoriesError, match=f"aggregate {output}: .*member 0 of {DATES[1]}"):
        check_trajectories(output, EXPECTED, DATES, MEMBERS, (2, 4, 8), checksums)


def test_other_attributes_or_shape_are_named(store):
    output, _ = store
    with pytest.raises(TrajectoriesError, match="attribute 'sampler' is 'lms'.*'ddim'"):
        check_trajectories(output, {**EXPECTED, "sampler": "ddim"}, DATES, MEMBERS)
    with pytest.raises(TrajectoriesError, match="along 'channel'"):
        check_trajectories(output, EXPECTED, DATES, MEMBERS, (3, 4, 8))
    with pytest.raises(TrajectoriesError, match="along 'member'"):
        check_trajectories(output, EXPECTED, DATES, [0, 1, 2])

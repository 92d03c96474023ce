"""The aggregate store: every member of one trajectory size in one zarr, `trajectories.zarr`.

Dims (start_date, member, time, channel, y, x), with `lead_time` and `valid_time`
coordinates; it opens with `xarray.open_zarr`. Shards are streamed into regions of the
store one at a time, so peak memory is that of a single member whatever the ensemble size.

The attribute `checksums` holds, per start date and member, the sha256 of that member's
latents (its shard's checksum), so that `check_trajectories` finds damage done later
(a missing, truncated or altered chunk). Aggregates written before it existed have none;
they are checked against their shards' checksums instead.
"""

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import dask.array
import numpy as np
import xarray as xr
import zarr
from tqdm import tqdm

from skyquilt.io.atomic import atomic_directory
from skyquilt.io.fingerprints import INPUTS
from skyquilt.io.shards import (
    LATENT,
    MEMBER_KEYS,
    SHARD_DIMS,
    ZARR_FORMAT,
    checksum,
    latent_shape,
    read_shard,
    regenerate_hint,
)

AGGREGATE_DIMS = ("start_date", "member", *SHARD_DIMS)
CHECKSUMS = "checksums"
# Per start date and member: the content fingerprint of the denoiser it was sampled from.
FINGERPRINTS = "denoiser_fingerprints"
Slot = tuple[str, int]


class TrajectoriesError(ValueError):
    """An aggregate that cannot be used; the message names the store and what is wrong."""


def _template(first: xr.Dataset, start_dates: Sequence[str], members: Sequence[int]) -> xr.Dataset:
    """The aggregate as lazy NaNs, shaped and attributed after its first shard."""
    steps = first.sizes["time"]
    shape = (len(start_dates), len(members), steps, *latent_shape(first))
    lead_time = first["time"].values - first["time"].values[0]
    valid_time = np.stack([np.datetime64(label, "ns") + lead_time for label in start_dates])
    attrs = {key: value for key, value in first.attrs.items() if key not in MEMBER_KEYS}
    attrs |= {"members": len(members), "start_dates": json.dumps(list(start_dates))}
    chunks = (1, 1, steps, *latent_shape(first))
    latent = dask.array.full(shape, np.nan, dtype=np.float32, chunks=chunks)
    return xr.Dataset(
        {LATENT: (AGGREGATE_DIMS, latent)},
        coords={
            "start_date": np.array([np.datetime64(label, "ns") for label in start_dates]),
            "member": np.asarray(members, dtype=np.int64),
            "lead_time": ("time", lead_time),
            "valid_time": (("start_date", "time"), valid_time),
        },
        attrs=attrs,
    )


def merge_shards(
    shards: Mapping[Slot, Path],
    output: Path,
    expected: Mapping[Slot, Mapping],
    start_dates: Sequence[str],
    members: Sequence[int],
    shape: tuple[int, ...] | None = None,
    progress: bool = True,
) -> None:
    """Merge member shards into `output` atomically, checking each one on the way.

    Arguments:
        shards: (start date label 'YYYY-MM-DDTHH', member) -> shard path, one per slot.
        output: the aggregate store; a previous one stays intact until the new one is whole.
        expected: slot -> the attributes its shard must carry (its member's provenance).
        start_dates, members: the slots, date-major.
        shape: (C, H, W) of the model's latents, if known; every shard must have the first
            shard's shape in any case.
    """
    slots = [(label, member) for label in start_dates for member in members]

    def checked(slot: Slot, shape: tuple[int, ...] | None) -> xr.Dataset:
        return read_shard(shards[slot], expected[slot], shape)

    first = checked(slots[0], shape)
    template = _template(first, start_dates, members)
    chunks = template[LATENT].data.chunksize
    encoding = {LATENT: {"_FillValue": np.float32(np.nan), "chunks": chunks}}
    with atomic_directory(output) as temporary:
        template.to_zarr(
            temporary, mode="w-", compute=False, encoding=encoding, consolidated=True,
            zarr_format=ZARR_FORMAT,
        )  # fmt: skip
        wall_time = 0.0
        checksums = [["" for _ in members] for _ in start_dates]
        fingerprints = [["" for _ in members] for _ in start_dates]
        for index, slot in enumerate(tqdm(slots, unit="member", disable=not progress)):
            shard = first if index == 0 else checked(slot, latent_shape(first))
            wall_time += float(shard.attrs.get("wall_time_s", 0.0))
            date_index, member_index = divmod(index, len(members))
            checksums[date_index][member_index] = shard.attrs["checksum"]  # read_shard checked it
            denoiser = shard.attrs.get(INPUTS, {}).get("denoiser", {})
            fingerprints[date_index][member_index] = denoiser.get("fingerprint", "")
            region = xr.Dataset({LATENT: (AGGREGATE_DIMS, shard[LATENT].values[None, None])})
            region.to_zarr(
                temporary,
                region={
                    "start_date": slice(date_index, date_index + 1),
                    "member": slice(member_index, member_index + 1),
                },
                consolidated=False,
            )
        zarr.open_group(temporary, mode="r+").attrs.update(
            {"total_wall_time_s": wall_time, CHECKSUMS: checksums, FINGERPRINTS: fingerprints}
        )
        zarr.consolidate_metadata(temporary, zarr_format=ZARR_FORMAT)


def _open_checked(path: Path | str, expected: Mapping, sizes: Mapping[str, int]) -> xr.Dataset:
    """Open an aggregate and check its structure, attributes, sizes and dtype."""
    fix = regenerate_hint(path)
    try:
        store = xr.open_zarr(path, consolidated=True)
    except Exception as error:  # zarr and xarray raise many types for broken stores
        raise TrajectoriesError(f"aggregate {path} cannot be opened ({error}); {fix}") from error
    if LATENT not in store or store[LATENT].dims != AGGREGATE_DIMS:
        raise TrajectoriesError(
            f"aggregate {path} has no '{LATENT}' variable with dims {AGGREGATE_DIMS}; {fix}"
        )
    for key, value in expected.items():
        if store.attrs.get(key) != value:
            raise TrajectoriesError(
                f"aggregate {path}: attribute '{key}' is {store.attrs.get(key)!r} but the "
                f"config asks for {value!r}; {fix}"
            )
    for dim, count in sizes.items():
        if store.sizes[dim] != count:
            raise TrajectoriesError(
                f"aggregate {path} has {store.sizes[dim]} along '{dim}', expected {count}; {fix}"
            )
    if store[LATENT].dtype != np.float32:
        raise TrajectoriesError(
            f"aggregate {path} has dtype {store[LATENT].dtype}, expected float32; {fix}"
        )
    return store


def _check_member(path: Path | str, latent: zarr.Array, index: tuple[int, int], slot: Slot,
                  digest: str) -> None:  # fmt: skip
    """The latents of one member of an aggregate match `digest`."""
    label, member = slot
    try:
        values = latent[index]
    except Exception as error:  # zarr raises many types for damaged chunks
        raise TrajectoriesError(
            f"aggregate {path}: member {member} of {label} has an unreadable chunk "
            f"({error}); {regenerate_hint(path)}"
        ) from error
    if checksum(values) != digest:
        raise TrajectoriesError(
            f"aggregate {path}: the latents of member {member} of {label} do not match "
            f"their checksum (missing or damaged chunk); {regenerate_hint(path)}"
        )


def check_trajectories(
    path: Path | str,
    expected: Mapping,
    start_dates: Sequence[str],
    members: Sequence[int],
    shape: tuple[int, ...] | None = None,
    shard_checksums: Mapping[Slot, str] | None = None,
) -> None:
    """Re-check a finished aggregate: structure, attributes, shape and every member's checksum.

    Arguments:
        path: the aggregate store.
        expected: attributes it must carry (the run's provenance, without the member keys);
            `trajectory_size`, when given, is also its number of states.
        start_dates, members: its slots, date-major.
        shape: (C, H, W) of the model's latents.
        shard_checksums: slot -> checksum of its (checked) shard, for an aggregate written
            before aggregates carried checksums; slots not listed are not compared then.

    Raises TrajectoriesError naming `path` and the first problem found. Reads one member at
    a time.
    """
    sizes = {"start_date": len(start_dates), "member": len(members)}
    if expected.get("trajectory_size") is not None:
        sizes["time"] = expected["trajectory_size"]
    if shape is not None:
        sizes |= dict(zip(SHARD_DIMS[1:], shape, strict=True))
    store = _open_checked(path, expected, sizes)
    if store.attrs.get("start_dates") != json.dumps(list(start_dates)):
        raise TrajectoriesError(
            f"aggregate {path} holds the start dates {store.attrs.get('start_dates')}, "
            f"expected {list(start_dates)}; {regenerate_hint(path)}"
        )
    recorded = store.attrs.get(CHECKSUMS)
    latent = zarr.open_array(Path(path) / LATENT, mode="r")
    for date_index, label in enumerate(start_dates):
        for member_index, member in enumerate(members):
            slot = (label, member)
            if recorded is not None:
                digest = recorded[date_index][member_index]
            else:
                digest = (shard_checksums or {}).get(slot)
            if digest is not None:
                _check_member(path, latent, (date_index, member_index), slot, digest)

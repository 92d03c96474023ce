"""The aggregate store: every member of one trajectory size in one zarr, `trajectories.zarr`.

Dims (start_date, member, time, channel, y, x), with `lead_time` and `valid_time`
coordinates; it opens with `xarray.open_zarr`. Shards are streamed into regions of the
store one at a time, so peak memory is that of a single member whatever the ensemble size.
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
from skyquilt.io.shards import (
    LATENT,
    MEMBER_KEYS,
    SHARD_DIMS,
    ZARR_FORMAT,
    latent_shape,
    read_shard,
)

AGGREGATE_DIMS = ("start_date", "member", *SHARD_DIMS)
Slot = tuple[str, int]


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
        for index, slot in enumerate(tqdm(slots, unit="member", disable=not progress)):
            shard = first if index == 0 else checked(slot, latent_shape(first))
            wall_time += float(shard.attrs.get("wall_time_s", 0.0))
            region = xr.Dataset({LATENT: (AGGREGATE_DIMS, shard[LATENT].values[None, None])})
            date_index, member_index = divmod(index, len(members))
            region.to_zarr(
                temporary,
                region={
                    "start_date": slice(date_index, date_index + 1),
                    "member": slice(member_index, member_index + 1),
                },
                consolidated=False,
            )
        zarr.open_group(temporary, mode="r+").attrs.update({"total_wall_time_s": wall_time})

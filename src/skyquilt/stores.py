"""Latent zarr stores: one shard per member, and the streaming aggregate of a trajectory size.

Every store is written to a temporary sibling path and renamed into place only when it is
complete, so a killed job never leaves anything that looks finished. A shard carries a
checksum of its latents, which the aggregate verifies: a missing, truncated or altered
chunk is caught and the aggregate names the file.
"""

import glob
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import dask.array
import numpy as np
import xarray as xr
import zarr
from tqdm import tqdm

LATENT = "latent"
# Zarr format 2: consolidated metadata, readable by every zarr and xarray version users have.
ZARR_FORMAT = 2
SHARD_DIMS = ("time", "channel", "y", "x")
AGGREGATE_DIMS = ("start_date", "member", *SHARD_DIMS)
# Attributes every shard of one aggregate must share with the config that asked for it.
RUN_KEYS = (
    "model_path",
    "model_target",
    "sampler",
    "sampler_config",
    "steps",
    "precision",
    "blanket_size",
    "overlap",
    "padded_size",
    "stitch",
    "seed",
    "trajectory_size",
)
# Attributes that differ between members and are not carried into the aggregate.
MEMBER_KEYS = ("start_date", "member", "member_seed", "wall_time_s", "checksum", "device")


class ShardError(ValueError):
    """A shard the aggregate cannot use; the message names the file and what is wrong."""


def checksum(latent: np.ndarray) -> str:
    """sha256 of the float32 latents in C order."""
    return hashlib.sha256(np.ascontiguousarray(latent, dtype=np.float32)).hexdigest()  # no copy


def remove_leftovers(final: Path) -> None:
    """Delete the temporary stores that a writer of `final` killed with SIGKILL left behind.

    Safe because one job at a time writes a given output (Snakemake's lock). A moved-aside
    previous output is kept while `final` is missing: then it is the only good copy.
    """
    for stale in final.parent.glob(f".{glob.escape(final.name)}.*-*"):
        if ".tmp-" in stale.name or (".old-" in stale.name and final.exists()):
            shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `final`; on success it replaces `final`, else it is removed.

    An existing `final` is moved aside before the new one is renamed in and deleted only
    afterwards, so a good previous output is never lost to a failed write.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(final)
    temporary = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield temporary
        previous = None
        if final.exists():
            previous = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(final, previous)
        os.rename(temporary, final)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


@contextmanager
def atomic_file(path: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling of `path` (same suffix, so writers that infer the format
    from it still work); it becomes `path` only on success and is removed on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_shard(
    path: Path,
    latent: np.ndarray,
    times: np.ndarray,
    attrs: Mapping,
    before_commit: Callable[[], None] | None = None,
) -> None:
    """Write one member: latent (T, C, H, W) float32, times (T,) datetime64, provenance attrs.

    before_commit(), if given, is called once the temporary store is complete, right
    before it is renamed into place (fault-injection tests stop the job there).
    """
    latent = np.asarray(latent, dtype=np.float32)
    dataset = xr.Dataset(
        {LATENT: (SHARD_DIMS, latent)},
        coords={"time": np.asarray(times, dtype="datetime64[ns]")},
        attrs={**attrs, "checksum": checksum(latent)},
    )
    encoding = {LATENT: {"_FillValue": np.float32(np.nan)}}
    with atomic_directory(path) as temporary:
        dataset.to_zarr(
            temporary, mode="w-", encoding=encoding, consolidated=True, zarr_format=ZARR_FORMAT
        )
        if before_commit is not None:
            before_commit()


def open_store(path: Path) -> xr.Dataset:
    """Open a store written by skyquilt (lazily)."""
    return xr.open_zarr(path, consolidated=True)


def read_shard(path: Path, expected: Mapping, start_date: str, member: int) -> xr.Dataset:
    """Open, check and load one shard; raise ShardError naming `path` if it is not usable.

    expected: the RUN_KEYS values the config asks for (a missing key is not checked), and
    optionally "latent_shape": [C, H, W] of the model.
    """
    fix = f"regenerate it (delete it, or run snakemake --forcerun {path})"
    expected = dict(expected)
    latent_shape = expected.pop("latent_shape", None)
    try:
        shard = open_store(path)
    except Exception as error:  # zarr and xarray raise many types for broken stores
        raise ShardError(f"shard {path} cannot be opened ({error}); {fix}") from error
    if LATENT not in shard or shard[LATENT].dims != SHARD_DIMS:
        raise ShardError(f"shard {path} has no '{LATENT}' variable with dims {SHARD_DIMS}; {fix}")
    for key, value in expected.items():
        if shard.attrs.get(key) != value:
            raise ShardError(
                f"shard {path}: attribute '{key}' is {shard.attrs.get(key)!r} but the config "
                f"asks for {value!r}; {fix}"
            )
    identity = {"start_date": start_date, "member": member}
    for key, value in identity.items():
        if shard.attrs.get(key) != value:
            raise ShardError(
                f"shard {path}: attribute '{key}' is {shard.attrs.get(key)!r}, "
                f"expected {value!r}; {fix}"
            )
    shape = tuple(shard.sizes[dim] for dim in SHARD_DIMS[1:])
    if latent_shape is not None and shape != tuple(latent_shape):
        raise ShardError(
            f"shard {path} has latent shape {shape}, expected {tuple(latent_shape)}; {fix}"
        )
    size = expected.get("trajectory_size")
    if size is not None and shard.sizes["time"] != size:
        raise ShardError(f"shard {path} holds {shard.sizes['time']} states, expected {size}; {fix}")
    if shard[LATENT].dtype != np.float32:
        raise ShardError(f"shard {path} has dtype {shard[LATENT].dtype}, expected float32; {fix}")
    try:
        shard = shard.load()
    except Exception as error:
        raise ShardError(f"shard {path} has an unreadable chunk ({error}); {fix}") from error
    if checksum(shard[LATENT].values) != shard.attrs.get("checksum"):
        raise ShardError(
            f"shard {path}: its latents do not match their checksum "
            f"(missing or damaged chunk); {fix}"
        )
    return shard


def aggregate(
    shards: Mapping[tuple[str, int], Path],
    output: Path,
    expected: Mapping,
    start_dates: Sequence[str],
    members: Sequence[int],
    progress: bool = True,
    on_member: Callable[[int], None] | None = None,
) -> None:
    """Merge member shards into one store with dims (start_date, member, time, C, H, W).

    shards: (start_date label 'YYYY-MM-DDTHH', member) -> shard path, one per slot.
    Streams one shard at a time into a region of the output, so peak memory is that of a
    single member whatever the size of the ensemble. on_member(n), if given, is called
    after the n-th member is written into the temporary store.
    """

    first_key = (start_dates[0], members[0])
    first = read_shard(shards[first_key], expected, *first_key)
    steps = first.sizes["time"]
    latent_shape = tuple(first.sizes[dim] for dim in SHARD_DIMS[1:])
    lead_time = first["time"].values - first["time"].values[0]
    shape = (len(start_dates), len(members), steps, *latent_shape)
    chunks = (1, 1, steps, *latent_shape)
    valid_time = np.stack([np.datetime64(label, "ns") + lead_time for label in start_dates])
    attrs = {key: value for key, value in first.attrs.items() if key not in MEMBER_KEYS}
    attrs |= {"members": len(members), "start_dates": json.dumps(list(start_dates))}
    template = xr.Dataset(
        {LATENT: (AGGREGATE_DIMS, dask.array.full(shape, np.nan, dtype=np.float32, chunks=chunks))},
        coords={
            "start_date": np.array([np.datetime64(label, "ns") for label in start_dates]),
            "member": np.asarray(members, dtype=np.int64),
            "lead_time": ("time", lead_time),
            "valid_time": (("start_date", "time"), valid_time),
        },
        attrs=attrs,
    )
    encoding = {LATENT: {"_FillValue": np.float32(np.nan), "chunks": chunks}}
    with atomic_directory(output) as temporary:
        template.to_zarr(
            temporary,
            mode="w-",
            compute=False,
            encoding=encoding,
            consolidated=True,
            zarr_format=ZARR_FORMAT,
        )
        slots = [(d, m) for d in range(len(start_dates)) for m in range(len(members))]
        wall_time = 0.0
        bar = tqdm(slots, unit="member", disable=not progress)
        for written, (date_index, member_index) in enumerate(bar, start=1):
            key = (start_dates[date_index], members[member_index])
            shard = first if key == first_key else read_shard(shards[key], expected, *key)
            if tuple(shard.sizes[dim] for dim in SHARD_DIMS[1:]) != latent_shape:
                raise ShardError(
                    f"shard {shards[key]} has latent shape "
                    f"{tuple(shard.sizes[dim] for dim in SHARD_DIMS[1:])}, expected {latent_shape}"
                )
            wall_time += float(shard.attrs.get("wall_time_s", 0.0))
            region = xr.Dataset({LATENT: (AGGREGATE_DIMS, shard[LATENT].values[None, None])})
            region.to_zarr(
                temporary,
                region={
                    "start_date": slice(date_index, date_index + 1),
                    "member": slice(member_index, member_index + 1),
                },
                consolidated=False,
            )
            if on_member is not None:
                on_member(written)
        root_attrs = {"total_wall_time_s": wall_time}

        zarr.open_group(temporary, mode="r+").attrs.update(root_attrs)

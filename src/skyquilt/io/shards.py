"""The shard format: one ensemble member's latent trajectory in its own zarr store.

A shard holds `latent` (time, channel, y, x) float32, its `time` coordinate and the member's
provenance as attributes, plus a sha256 checksum of the latents. Every reader checks a shard
here, once: structure, attributes, shape, dtype and checksum, and a failure names the file
and how to regenerate it.
"""

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from skyquilt.io.atomic import atomic_directory
from skyquilt.io.fingerprints import INPUTS

LATENT = "latent"
# Zarr format 2: consolidated metadata, readable by every zarr and xarray version users have.
ZARR_FORMAT = 2
SHARD_DIMS = ("time", "channel", "y", "x")
# Attributes that differ between members and are not carried into the aggregate.
MEMBER_KEYS = ("start_date", "member", "member_seed", "wall_time_s", "checksum", "device")


class ShardError(ValueError):
    """A shard that cannot be used; the message names the file and what is wrong."""


def checksum(latent: np.ndarray) -> str:
    """sha256 of the float32 latents in C order."""
    return hashlib.sha256(np.ascontiguousarray(latent, dtype=np.float32)).hexdigest()  # no copy


def write_shard(path: Path, latent: np.ndarray, times: np.ndarray, attrs: Mapping) -> None:
    """Write one member atomically.

    Arguments:
        path: the shard's path, `<...>/<member>.zarr`.
        latent: (T, C, H, W) standardised latents, stored as float32.
        times: (T,) datetime64 timestamps of the states.
        attrs: the member's provenance; a checksum of `latent` is added.
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


def regenerate_hint(path: Path | str) -> str:
    """How to repair a damaged output: the end of every line that names one."""
    return f"regenerate it (delete it, or run snakemake --forcerun {path})"


def recorded_inputs(path: Path | str) -> dict:
    """What a shard records it was made from (attribute `inputs`, see
    skyquilt.io.fingerprints), {} when it records nothing; its attributes file alone is read."""
    try:
        attrs = json.loads((Path(path) / ".zattrs").read_text())
    except (OSError, ValueError) as error:
        raise ShardError(
            f"shard {path} has no readable attributes ({error}); {regenerate_hint(path)}"
        ) from None
    return attrs.get(INPUTS) or {}


def latent_shape(shard: xr.Dataset) -> tuple[int, int, int]:
    """(C, H, W) of a shard's latents."""
    return tuple(shard.sizes[dim] for dim in SHARD_DIMS[1:])


def open_shard(
    path: Path | str,
    expected: Mapping | None = None,
    shape: tuple[int, ...] | None = None,
) -> xr.Dataset:
    """Open a shard lazily and check everything but its data; raise ShardError naming `path`.

    Arguments:
        path: the shard.
        expected: attribute values the shard must carry (e.g. a member request's
            provenance); `trajectory_size`, when given, is also its number of states.
        shape: (C, H, W) its latents must have.

    Returns:
        The shard, its `latent` (T, C, H, W) float32 not yet loaded.
    """
    fix = regenerate_hint(path)
    try:
        shard = xr.open_zarr(path, consolidated=True)
    except Exception as error:  # zarr and xarray raise many types for broken stores
        raise ShardError(f"shard {path} cannot be opened ({error}); {fix}") from error
    if LATENT not in shard or shard[LATENT].dims != SHARD_DIMS:
        raise ShardError(f"shard {path} has no '{LATENT}' variable with dims {SHARD_DIMS}; {fix}")
    for key, value in (expected or {}).items():
        if shard.attrs.get(key) != value:
            raise ShardError(
                f"shard {path}: attribute '{key}' is {shard.attrs.get(key)!r} but the config "
                f"asks for {value!r}; {fix}"
            )
    if shape is not None and latent_shape(shard) != tuple(shape):
        raise ShardError(
            f"shard {path} has latent shape {latent_shape(shard)}, expected {tuple(shape)}; {fix}"
        )
    size = (expected or {}).get("trajectory_size")
    if size is not None and shard.sizes["time"] != size:
        raise ShardError(f"shard {path} holds {shard.sizes['time']} states, expected {size}; {fix}")
    if shard[LATENT].dtype != np.float32:
        raise ShardError(f"shard {path} has dtype {shard[LATENT].dtype}, expected float32; {fix}")
    return shard


def check_checksum(path: Path | str, shard: xr.Dataset, digest: str) -> None:
    """Raise ShardError unless `digest` (sha256 of the latents read) is the shard's checksum."""
    if digest != shard.attrs.get("checksum"):
        raise ShardError(
            f"shard {path}: its latents do not match their checksum "
            f"(missing or damaged chunk); {regenerate_hint(path)}"
        )


def read_shard(
    path: Path | str, expected: Mapping | None = None, shape: tuple[int, ...] | None = None
) -> xr.Dataset:
    """`open_shard`, then load the latents and verify their checksum.

    Arguments:
        path: the shard.
        expected: attribute values the shard must carry, see `open_shard`.
        shape: (C, H, W) its latents must have.

    Returns:
        The shard, its `latent` (T, C, H, W) float32 loaded and checked.
    """
    shard = open_shard(path, expected, shape)
    try:
        shard = shard.load()
    except Exception as error:  # zarr raises many types for missing or damaged chunks
        raise ShardError(
            f"shard {path} has an unreadable chunk ({error}); {regenerate_hint(path)}"
        ) from error
    check_checksum(path, shard, checksum(shard[LATENT].values))
    return shard

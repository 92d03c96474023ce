"""Decoded forecasts in the WeatherBench2 layout: one zarr per member, in physical units.

Dims (time [init, 1], member [1], prediction_timedelta [T], [level,] latitude, longitude);
the dataset supplies the grid coordinates, levels, units and long names. A store is created
empty first (lazy NaNs) and filled a block of states at a time. Its attribute `checksums`
holds the sha256 of each variable's values (float32, C order), so that damage done later is
found (`check_forecast`).
"""

import hashlib
from pathlib import Path

import dask.array
import numpy as np
import xarray as xr
import zarr

from skyquilt import __version__

FORECAST_DIMS = ("time", "member", "prediction_timedelta")
SPATIAL_DIMS = ("latitude", "longitude")
# Dataset attributes that describe a variable and carry over to its decoded field.
FIELD_ATTRS = ("units", "long_name", "standard_name")
CHECKSUMS = "checksums"


class ForecastError(ValueError):
    """A decoded member that cannot be used; the message names the store and what is wrong."""


Channel = tuple[str, float | None]


def resolve_channels(
    decoder_variables: tuple[str, ...],
    decoder_levels: tuple[float | None, ...],
    dataset: xr.Dataset,
) -> list[Channel]:
    """The (variable, level) of each decoder output channel, as the dataset has it.

    Arguments:
        decoder_variables: (V,) the dataset variable of each output channel.
        decoder_levels: (V,) the level of each, None where the decoder names none.
        dataset: the dataset of the truth, which the decoded forecasts follow.

    Returns:
        (V,) channels: level None when the variable has no level axis, the dataset's level
        when the decoder names none and the dataset has exactly one. A KeyError names a
        variable the dataset lacks, a ValueError a level that does not fit.
    """
    channels = []
    for variable, level in zip(decoder_variables, decoder_levels, strict=True):
        if variable not in dataset:
            raise KeyError(
                f"the decoder outputs {variable!r}, which the dataset lacks "
                f"(it has {', '.join(map(str, dataset.data_vars))})"
            )
        if "level" in dataset[variable].dims:
            if level is None and dataset.sizes["level"] != 1:
                raise ValueError(
                    f"the decoder outputs {variable!r} without a level, but the dataset has "
                    f"levels {dataset.level.values.tolist()}; list the decoder's levels"
                )
            level = dataset.level.values[0].item() if level is None else level
        elif level is not None:
            raise ValueError(f"the decoder outputs {variable!r} at level {level}, the dataset none")
        channels.append((variable, level))
    return channels


def decoded_template(
    shard: xr.Dataset, dataset: xr.Dataset, channels: list[Channel], states_per_chunk: int
) -> xr.Dataset:
    """The decoded dataset of one shard as lazy NaNs: coordinates, attributes and chunks.

    A variable has a level axis when its channels have levels; as in WeatherBench2, all such
    variables share one level axis, so they must be decoded at the same levels.

    Arguments:
        shard: the member's shard: its T timestamps and provenance attributes.
        dataset: the dataset of the truth: grid coordinates, levels, variable attributes.
        channels: (variable, level) of each decoder output channel, see `resolve_channels`.
        states_per_chunk: the chunk size along prediction_timedelta.

    Returns:
        The store's template: each variable (time [1], member [1], prediction_timedelta [T],
        [level [L],] latitude, longitude) of float32 NaNs; the shard's attributes but its
        checksum, and the skyquilt version.
    """
    times = shard["time"].values
    levels = sorted({level for _, level in channels} - {None})
    for variable in dict.fromkeys(name for name, _ in channels):
        own = sorted(level for name, level in channels if name == variable)
        if None not in own and own != levels:
            raise ValueError(
                f"the decoder outputs {variable} at levels {own}, other variables at {levels}; "
                "variables with levels must share them"
            )
    coords = {
        "time": ("time", times[:1], {"long_name": "initialisation time"}),
        "member": ("member", np.array([shard.attrs.get("member", 0)], dtype=np.int64)),
        "prediction_timedelta": ("prediction_timedelta", times - times[0]),
    }
    # Values and attributes only: the dataset's encoding belongs to its own store format.
    coords |= {dim: (dim, dataset[dim].values, dataset[dim].attrs) for dim in SPATIAL_DIMS}
    if levels:
        values = np.array(levels, dtype=dataset["level"].dtype)
        coords["level"] = ("level", values, dataset["level"].attrs)
    sizes = {"time": 1, "member": 1, "prediction_timedelta": len(times), "level": len(levels)}
    sizes |= {dim: dataset.sizes[dim] for dim in SPATIAL_DIMS}
    data_vars = {}
    for variable in dict.fromkeys(variable for variable, _ in channels):
        has_level = any(level is not None for name, level in channels if name == variable)
        dims = (*FORECAST_DIMS, *(("level",) if has_level else ()), *SPATIAL_DIMS)
        shape = tuple(sizes[dim] for dim in dims)
        chunks = tuple(
            min(states_per_chunk, sizes[dim]) if dim == "prediction_timedelta" else sizes[dim]
            for dim in dims
        )
        source = dataset[variable].attrs
        attrs = {key: source[key] for key in FIELD_ATTRS if key in source}
        fill = dask.array.full(shape, np.nan, dtype=np.float32, chunks=chunks)
        data_vars[variable] = (dims, fill, attrs)
    attrs = {key: value for key, value in shard.attrs.items() if key != "checksum"}
    attrs |= {"skyquilt_version": __version__}
    return xr.Dataset(data_vars, coords, attrs)


def variable_blocks(
    fields: np.ndarray, channels: list[Channel], template: xr.Dataset
) -> dict[str, np.ndarray]:
    """Split decoded channels into each variable's data, laid out as in the template.

    Arguments:
        fields: (B, V, H, W) decoded channels of B states.
        channels: (variable, level) of each of the V channels, see `resolve_channels`.
        template: the decoded store's template, see `decoded_template`.

    Returns:
        {variable: (B, [L,] H, W)}, without the time and member axes (size 1).
    """
    blocks = {}
    for variable in template.data_vars:
        indices = [index for index, (name, _) in enumerate(channels) if name == variable]
        if "level" not in template[variable].dims:
            blocks[variable] = fields[:, indices[0]]
            continue
        # Channels may list the levels in any order; the level axis is sorted.
        order = np.argsort([channels[index][1] for index in indices])
        blocks[variable] = fields[:, np.asarray(indices)[order]]
    return blocks


def check_forecast(path: Path | str) -> None:
    """The values of every variable of a decoded member match their checksums (attribute
    `checksums`; a member without it is not checked); read a chunk of states at a time.

    Raises ForecastError naming the store and the variable.
    """
    group = zarr.open_group(path, mode="r")
    for variable, expected in group.attrs.get(CHECKSUMS, {}).items():
        digest = hashlib.sha256()
        try:
            array = group[variable]
            step = array.chunks[2]  # (time, member, prediction_timedelta, ...)
            for start in range(0, array.shape[2], step):
                block = np.asarray(array[0, 0, start : start + step], dtype=np.float32)
                digest.update(np.ascontiguousarray(block))
        except Exception as error:  # zarr raises many types for missing or damaged chunks
            raise ForecastError(
                f"decoded member {path}: {variable} has an unreadable chunk ({error})"
            ) from error
        if digest.hexdigest() != expected:
            raise ForecastError(
                f"decoded member {path}: the values of {variable} do not match their checksum "
                "(missing or damaged chunk)"
            )

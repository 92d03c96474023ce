"""The ensemble-statistics job: mean, standard deviation, minimum, maximum and quantiles over
the decoded members of one (trajectory size, start date), run by scripts/ensemble_statistics.py.

Output: one zarr per start date, `<prior>/<T>h/statistics/<date>.zarr`, one group per statistic,
each a WeatherBench2-layout forecast dataset whose variables are named like the decoded ones:

    /mean, /std, /min, /max   dims (time [init, 1], prediction_timedelta, [level,] latitude,
                              longitude): `xr.open_zarr(path, group="mean")` is a deterministic
                              forecast that WeatherBench2's evaluation reads as it is
    /quantile                 dims (time, quantile [Q], prediction_timedelta, [level,] latitude,
                              longitude): the quantile axis stands where `member` stood
    /                         attributes only (members, quantiles, ddof, ...);
                              `xr.open_datatree(path, engine="zarr")` shows everything

float32 values; std has ddof = 1 (NaN for one member); quantiles interpolate linearly between
ranks (numpy.quantile's default). Every group carries the attributes: members (count),
quantiles, statistic, ddof, quantile_method, skyquilt_version, and those that all members share
(start date, trajectory size, model, sampler, ...).

Memory does not grow with the number of members N. The work goes a block of states at a time
(the decoded members' chunk along prediction_timedelta): moments read the members one at a time
into running float64 accumulators of the block (skyquilt.scoring.statistics.RunningMoments);
quantiles read every member of one latitude band of the block, the band sized so that N x band
fits `block_mb` (at least one row). Members are checked to share their grid, lead times and
start date before anything is computed.
"""

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import dask.array
import numpy as np
import xarray as xr
import zarr

from skyquilt import __version__
from skyquilt.io.atomic import atomic_directory
from skyquilt.io.fingerprints import INPUTS, mixed_inputs
from skyquilt.io.forecasts import CHECKSUMS
from skyquilt.io.shards import ZARR_FORMAT
from skyquilt.jobs.logs import configure_logging, reporting_full_disk
from skyquilt.jobs.memory import release_large_buffers
from skyquilt.scoring.latent import latent_statistics
from skyquilt.scoring.statistics import (
    QUANTILE_METHOD,
    RunningMoments,
    block_rows,
    quantile_blocks,
)

log = logging.getLogger("skyquilt")

MOMENTS = ("mean", "std", "min", "max")
QUANTILE = "quantile"
GROUPS = (*MOMENTS, QUANTILE)
QUANTILES = (0.05, 0.5, 0.95)
BLOCK_MB = 256
DDOF = 1
COORDS = ("time", "prediction_timedelta", "level", "latitude", "longitude")
# Member attributes that differ between members by design, or describe only the member's own
# values (its checksums).
MEMBER_ATTRS = ("member", CHECKSUMS)


def open_member(path: str | Path) -> xr.Dataset:
    """One decoded member (time [1], member [1], prediction_timedelta, ...), lazily, no dask."""
    return xr.open_zarr(path, consolidated=True, chunks=None)


def check_members(paths: Sequence[str | Path]) -> tuple[xr.Dataset, dict]:
    """The first member (the layout every other one must share) and the attributes that every
    member has with the same value; ValueError naming the first member that differs, or the
    members made from different inputs (skyquilt.io.fingerprints) and their fingerprints."""
    if not paths:
        raise ValueError("no decoded members to compute statistics of")
    first = open_member(paths[0])
    shared = {key: value for key, value in first.attrs.items() if key not in MEMBER_ATTRS}
    inputs = {str(paths[0]): first.attrs.get(INPUTS, {})}
    for path in paths[1:]:
        member = open_member(path)
        inputs[str(path)] = member.attrs.get(INPUTS, {})
        if set(member.data_vars) != set(first.data_vars):
            raise ValueError(
                f"decoded member {path} has variables {sorted(member.data_vars)}, but "
                f"{paths[0]} has {sorted(first.data_vars)}"
            )
        for name in COORDS:
            if (name in member.coords) != (name in first.coords) or (
                name in first.coords and not np.array_equal(member[name], first[name])
            ):
                raise ValueError(
                    f"decoded member {path} has another {name} than {paths[0]}; the members of "
                    "one start date must share it"
                )
        for variable in first.data_vars:
            if member[variable].dims != first[variable].dims:
                raise ValueError(
                    f"decoded member {path}: {variable} has dims {member[variable].dims}"
                )
        shared = {
            key: value
            for key, value in shared.items()
            if key in member.attrs and _same(member.attrs[key], value)
        }
        member.close()
    mixed = mixed_inputs(inputs)
    if mixed is not None:
        raise ValueError(f"decoded {mixed}; decode the stale ones again (delete them)")
    return first, shared


def _same(left: object, right: object) -> bool:
    try:
        return bool(np.all(np.asarray(left) == np.asarray(right)))
    except (TypeError, ValueError):
        return False


def state_chunk(first: xr.Dataset) -> int:
    """States per block: the decoded members' chunk along prediction_timedelta (each read then
    decompresses whole chunks), else every state."""
    states = first.sizes["prediction_timedelta"]
    for values in first.data_vars.values():
        chunks = values.encoding.get("chunks")
        if chunks:
            return int(chunks[values.dims.index("prediction_timedelta")])
    return states


def statistics_template(
    first: xr.Dataset, quantiles: Sequence[float], states_per_block: int, attrs: dict
) -> dict[str, xr.Dataset]:
    """Each group's dataset as lazy NaNs: coordinates and attributes from the first member,
    float32 variables chunked by `states_per_block` states (and one quantile)."""
    coords = {
        name: (name, first[name].values, first[name].attrs)
        for name in COORDS
        if name in first.coords
    }
    templates = {}
    for group in GROUPS:
        group_coords = dict(coords)
        if group == QUANTILE:
            group_coords[QUANTILE] = (QUANTILE, np.asarray(quantiles, dtype=np.float64))
        data_vars = {}
        for variable, values in first.data_vars.items():
            dims = tuple(dim for dim in values.dims if dim != "member")
            if group == QUANTILE:
                dims = (dims[0], QUANTILE, *dims[1:])
            sizes = {**first.sizes, QUANTILE: len(quantiles)}
            shape = tuple(sizes[dim] for dim in dims)
            chunks = tuple(
                {"prediction_timedelta": states_per_block, "time": 1, QUANTILE: 1}.get(
                    dim, sizes[dim]
                )
                for dim in dims
            )
            fill = dask.array.full(shape, np.nan, dtype=np.float32, chunks=chunks)
            data_vars[variable] = (dims, fill, dict(values.attrs))
        templates[group] = xr.Dataset(data_vars, group_coords, {**attrs, "statistic": group})
    return templates


def _member_arrays(paths: Sequence[str | Path], variable: str) -> list[zarr.Array]:
    return [zarr.open_array(Path(path) / variable, mode="r") for path in paths]


def _write_variable(
    store: zarr.Group,
    paths: Sequence[str | Path],
    variable: str,
    states: int,
    states_per_block: int,
    quantiles: Sequence[float],
    block_bytes: int,
) -> None:
    """Every statistic of one variable, a block of states at a time."""
    arrays = _member_arrays(paths, variable)
    count = len(arrays)
    # Member arrays: (time [1], member [1], prediction_timedelta, [level,] latitude, longitude).
    field_shape = arrays[0].shape[3:]
    rows, row_bytes = field_shape[-2], int(np.prod(field_shape)) // field_shape[-2] * 4
    for start in range(0, states, states_per_block):
        block = slice(start, min(start + states_per_block, states))
        moments = None
        for array in arrays:
            values = array[0, 0, block]
            if moments is None:
                moments = RunningMoments(values.shape)
            moments.update(values)
            del values
        for name, result in zip(
            MOMENTS,
            (moments.mean, moments.std(DDOF), moments.minimum, moments.maximum),
            strict=True,
        ):
            store[f"{name}/{variable}"][0, block] = result.astype(np.float32)
        del moments
        band_rows = block_rows(count, row_bytes * (block.stop - block.start), rows, block_bytes)

        def read(member: int, band: slice, block: slice = block) -> np.ndarray:
            return arrays[member][0, 0, block, ..., band, :]

        result = quantile_blocks(read, count, rows, band_rows, quantiles)
        store[f"{QUANTILE}/{variable}"][0, :, block] = result.astype(np.float32)


def _create_store(temporary: Path, attrs: dict, templates: dict[str, xr.Dataset]) -> zarr.Group:
    """The statistics store as lazy NaNs: root attributes, one group per statistic."""
    xr.Dataset(attrs=attrs).to_zarr(
        temporary, mode="w-", consolidated=False, zarr_format=ZARR_FORMAT
    )
    for group, template in templates.items():
        template.to_zarr(
            temporary,
            group=group,
            mode="w-",
            compute=False,
            consolidated=False,
            zarr_format=ZARR_FORMAT,
        )
    zarr.consolidate_metadata(temporary, zarr_format=ZARR_FORMAT)
    return zarr.open_group(temporary, mode="r+", zarr_format=ZARR_FORMAT)


def run_statistics(
    decoded: Sequence[str | Path],
    output: str | Path,
    quantiles: Sequence[float] = QUANTILES,
    block_mb: float = BLOCK_MB,
) -> None:
    """Write the ensemble statistics of the decoded members of one start date to `output`.

    decoded: the members' zarrs (one start date, one trajectory size); quantiles: in (0, 1);
    block_mb: the bytes of member values read at once for quantiles (see the module doc).
    The store is written atomically: nothing is left at `output` if the job fails.
    """
    configure_logging()
    release_large_buffers()  # one block's buffers at a time, returned when freed
    began = time.perf_counter()
    quantiles = [float(value) for value in quantiles]
    first, shared = check_members(decoded)
    states = first.sizes["prediction_timedelta"]
    states_per_block = min(state_chunk(first), states)
    attrs = shared | {
        "members": len(decoded),
        "quantiles": quantiles,
        "ddof": DDOF,
        "quantile_method": QUANTILE_METHOD,
        "skyquilt_version": __version__,
    }
    templates = statistics_template(first, quantiles, states_per_block, attrs)
    log.info(
        "statistics of %d members, %d states, %s, quantiles %s",
        len(decoded),
        states,
        ", ".join(map(str, first.data_vars)),
        quantiles,
    )
    with reporting_full_disk(str(output)), atomic_directory(Path(output)) as temporary:
        store = _create_store(temporary, attrs, templates)
        for variable in first.data_vars:
            log.info("computing the statistics of %s", variable)
            _write_variable(
                store,
                decoded,
                str(variable),
                states,
                states_per_block,
                quantiles,
                int(block_mb * 1e6),
            )
    elapsed = time.perf_counter() - began
    log.info(
        "wrote %s in %.2f s (%.1f members/s)", output, elapsed, len(decoded) / max(elapsed, 1e-9)
    )


def run_latent_statistics(trajectories: str | Path, output: str | Path) -> None:
    """Write the latent mean, std and member checksums of one aggregate to `output` (a zarr),
    without decoding (skyquilt.scoring.latent), atomically."""
    configure_logging()
    aggregate = xr.open_zarr(trajectories)
    log.info("latent statistics of %s (%d members)", trajectories, aggregate.sizes["member"])
    result = latent_statistics(aggregate).assign_attrs(skyquilt_version=__version__)
    with reporting_full_disk(str(output)), atomic_directory(Path(output)) as temporary:
        result.to_zarr(temporary, mode="w-", consolidated=True, zarr_format=ZARR_FORMAT)
    log.info("wrote %s", output)

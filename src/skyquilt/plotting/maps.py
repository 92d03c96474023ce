"""Maps of decoded samples: galleries of truth and members at chosen lead times.

Forecasts follow WeatherBench2: dims (time [init], member, prediction_timedelta, [level,]
latitude [90 -> -90], longitude [0 -> 360]); the truth is the hourly dataset (time, [level,]
latitude, longitude). Maps share one colour scale per variable, the (q, 1 - q) quantiles of what
they show. Coastlines are drawn only when cartopy and its Natural Earth data are on disk.
"""

import functools
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.image import AxesImage

from skyquilt.plotting.figures import new_figure, save_figure
from skyquilt.scoring.baselines import align_truth

COLORMAPS = {"u_component_of_wind": "RdBu_r", "v_component_of_wind": "RdBu_r"}
# A gallery is a grid of panels plus room for titles and the colour bar.
GALLERY_PANEL_INCHES, GALLERY_MARGIN_INCHES, GALLERY_DPI = (2.6, 1.45), (1.2, 1.0), 100
# Colour limits come from at most this many states spread over a trajectory: bounded memory, and
# every job rendering a part of the frames computes the same limits.
LIMIT_STATES = 32


@functools.cache
def coastlines() -> tuple[np.ndarray, ...]:
    """Coastline polylines (n, 2) in (longitude 0..360, latitude), or () without offline data.

    Only data already on disk is used: cartopy would otherwise download it, and a compute node
    has no internet. Any failure means no coastlines, never a failed render.
    """
    try:
        import cartopy
        from cartopy.io import shapereader

        relative = Path("shapefiles", "natural_earth", "physical", "ne_110m_coastline.shp")
        roots = [cartopy.config.get("pre_existing_data_dir", ""), cartopy.config["data_dir"]]
        found = [Path(root, relative) for root in roots if root and Path(root, relative).exists()]
        if not found:
            return ()
        lines = []
        for geometry in shapereader.Reader(str(found[0])).geometries():
            for part in getattr(geometry, "geoms", [geometry]):
                points = np.asarray(part.coords)
                points[:, 0] %= 360
                # Split where a line crosses the 0/360 seam of the map.
                breaks = np.flatnonzero(np.abs(np.diff(points[:, 0])) > 180) + 1
                lines.extend(np.split(points, breaks))
        return tuple(lines)
    except Exception:
        return ()


def draw_map(axes: Axes, field: xr.DataArray, cmap: str, limits: tuple[float, float]) -> AxesImage:
    """Image of a (latitude, longitude) field on a lon/lat plate carree axis."""
    field = field.sortby("latitude", ascending=False)
    image = axes.imshow(
        field.values,
        cmap=cmap,
        vmin=limits[0],
        vmax=limits[1],
        extent=extent(field),
        interpolation="nearest",
    )
    for line in coastlines():
        axes.plot(line[:, 0], line[:, 1], color="black", linewidth=0.4)
    left, right, bottom, top = extent(field)
    axes.set(xlim=(left, right), ylim=(bottom, top))  # lines must not widen the map
    axes.set_xticks([])
    axes.set_yticks([])
    return image


def extent(field: xr.DataArray) -> tuple[float, float, float, float]:
    """Image extent with cell centres at the grid coordinates."""
    longitude, latitude = field.longitude.values, field.latitude.values
    dlon = (longitude[-1] - longitude[0]) / max(longitude.size - 1, 1)
    dlat = (latitude[0] - latitude[-1]) / max(latitude.size - 1, 1)
    return (
        longitude[0] - dlon / 2,
        longitude[-1] + dlon / 2,
        latitude[-1] - dlat / 2,
        latitude[0] + dlat / 2,
    )


def colour_limits(fields: Iterable[xr.DataArray], quantile: float = 0.01) -> tuple[float, float]:
    """Shared colour limits: the (q, 1 - q) quantiles of all values of `fields` together."""
    values = np.concatenate([np.ravel(field.values) for field in fields])
    low, high = np.nanquantile(values, [quantile, 1 - quantile])
    if high <= low:  # a constant field still needs a non-empty colour range
        low, high = low - 0.5, high + 0.5
    return float(low), float(high)


def variable_label(field: xr.DataArray, variable: str) -> str:
    """'u component of wind 500 hPa': the variable's name and the field's level, if any."""
    level = f" {int(field.level)} hPa" if "level" in field.coords else ""
    return f"{variable.replace('_', ' ')}{level}"


def units(field: xr.DataArray) -> str:
    """The field's units attribute, '' when it has none."""
    return field.attrs.get("units", "")


def time_label(time: np.datetime64) -> str:
    """'YYYY-MM-DD HHh', the date format of the config's start dates."""
    return pd.Timestamp(time).strftime("%Y-%m-%d %Hh")


def select(
    forecast: xr.Dataset, variable: str, level: float | None, init: int
) -> tuple[xr.DataArray, xr.Dataset]:
    """One init and (level of) one variable of a forecast.

    Returns:
        field: (member, prediction_timedelta, latitude, longitude).
        subset: the one-variable forecast dataset, used for truth alignment.
    """
    subset = forecast[[variable]].isel(time=[init])
    if ("level" in subset[variable].dims) != (level is not None):
        raise ValueError(
            f"{variable}: give a level exactly when it has a level axis (level={level})"
        )
    if level is not None:
        subset = subset.sel(level=[level])
    field = subset[variable].isel(time=0)
    return (field.isel(level=0) if level is not None else field), subset


def gallery(
    forecast: xr.Dataset,
    truth: xr.Dataset,
    variable: str,
    lead_hours: Sequence[float],
    path: str | os.PathLike,
    *,
    level: float | None = None,
    init: int = 0,
    members: Sequence[int] | None = None,
    quantile: float = 0.01,
) -> Path:
    """Gallery PNG: ground truth on the first row, one member per row below, leads as columns.

    One colour scale for all panels, with a colour bar in the variable's units.

    forecast: (time, member, prediction_timedelta, [level,] lat, lon); `init` indexes its time
    axis; `members` picks members (default all); truth: (time, [level,] lat, lon).
    """
    field, subset = select(forecast, variable, level, init)
    trajectory_size = subset.sizes["prediction_timedelta"]
    leads = pd.to_timedelta(np.asarray(lead_hours, dtype=float), unit="h").values
    subset = subset.sel(prediction_timedelta=leads)
    field = field.sel(prediction_timedelta=leads)
    if members is not None:
        field = field.sel(member=list(members))
    target = align_truth(truth, subset)[variable].isel(time=0)
    if level is not None:
        target = target.isel(level=0)
    field, target = field.load(), target.load()
    limits = colour_limits([field, target], quantile)
    cmap = COLORMAPS.get(variable, "viridis")

    rows, columns = field.sizes["member"] + 1, len(leads)
    figsize = np.multiply(GALLERY_PANEL_INCHES, (columns, rows)) + GALLERY_MARGIN_INCHES
    figure, axes = new_figure(rows, columns, figsize=figsize, dpi=GALLERY_DPI)
    for column in range(columns):
        truth_state = target.isel(prediction_timedelta=column)
        hours = leads[column] / np.timedelta64(1, "h")
        axes[0, column].set_title(
            f"{time_label(truth_state.valid_time.values)}\n+{hours:g} h", fontsize=9
        )
        image = draw_map(axes[0, column], truth_state, cmap, limits)
        for row, member in enumerate(field.member.values, start=1):
            state = field.sel(member=member).isel(prediction_timedelta=column)
            draw_map(axes[row, column], state, cmap, limits)
    axes[0, 0].set_ylabel("ground truth", fontsize=9)
    for row, member in enumerate(field.member.values, start=1):
        axes[row, 0].set_ylabel(f"sample {member}", fontsize=9)
    colour_bar = figure.colorbar(image, ax=axes, shrink=0.8, pad=0.02)
    colour_bar.set_label(f"{variable_label(field, variable)} [{units(field)}]")
    start = time_label(subset.time.values[0])
    # Two lines: a gallery of few columns is too narrow for the title on one.
    figure.suptitle(
        f"Unconditional samples (prior, not conditioned on observations)\n"
        f"{variable_label(field, variable)}, start {start}, T = {trajectory_size} states"
    )
    return save_figure(figure, path)

"""Pictures of decoded samples and of their scores: galleries, animations, score plots.

Forecasts follow WeatherBench2: dims (time [init], member, prediction_timedelta, [level,]
latitude [90 -> -90], longitude [0 -> 360]); the truth is the hourly dataset (time, [level,]
latitude, longitude). Maps share one colour scale per variable, the (q, 1 - q) quantiles of what
they show. Coastlines are drawn only when cartopy and its Natural Earth data are on disk.
Every file is written to a temporary sibling and renamed, so a killed job leaves no image that
looks finished.
"""

import functools
import itertools
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from skyquilt.baselines import align_truth
from skyquilt.products import ffmpeg_available
from skyquilt.stores import atomic_file

COLORMAPS = {"u_component_of_wind": "RdBu_r", "v_component_of_wind": "RdBu_r"}
SOURCE_STYLES = {
    "model": {"color": "tab:blue", "marker": "o"},
    "persistence": {"color": "tab:orange", "marker": "s"},
    "climatology": {"color": "tab:green", "marker": "^"},
    "truth": {"color": "black", "marker": None},
}
METRIC_LABELS = {
    "rmse": "ensemble-mean RMSE",
    "spread": "spread",
    "spread_skill_ratio": "spread-skill ratio",
    "crps": "fair CRPS",
}
# A gallery is a grid of panels plus room for titles and the colour bar.
GALLERY_PANEL_INCHES, GALLERY_MARGIN_INCHES, GALLERY_DPI = (2.6, 1.45), (1.2, 1.0), 100
# Animation frames are a multiple of 16 pixels on each side, so that ffmpeg encodes them as they
# are instead of resizing them.
FRAME_SIZE_INCHES, FRAME_DPI = (9.6, 3.52), 100
# Colour limits come from at most this many states spread over a trajectory: bounded memory, and
# every job rendering a part of the frames computes the same limits.
LIMIT_STATES = 32


def _figure(rows: int, columns: int, **kwargs) -> tuple[Figure, np.ndarray]:
    """A figure drawn by the Agg canvas, with a (rows, columns) array of axes.

    Figures are made without pyplot: no global figure registry to leak into, no GUI backend.
    """
    figure = Figure(layout="constrained", **kwargs)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, columns, squeeze=False)


def _save(figure: Figure, path: str | os.PathLike) -> Path:
    with atomic_file(path) as temporary:
        figure.savefig(temporary)
    return Path(path)


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


def _draw_map(axes: Axes, field: xr.DataArray, cmap: str, limits: tuple[float, float]):
    """Image of a (latitude, longitude) field on a lon/lat plate carree axis."""
    field = field.sortby("latitude", ascending=False)
    image = axes.imshow(
        field.values,
        cmap=cmap,
        vmin=limits[0],
        vmax=limits[1],
        extent=_extent(field),
        interpolation="nearest",
    )
    for line in coastlines():
        axes.plot(line[:, 0], line[:, 1], color="black", linewidth=0.4)
    left, right, bottom, top = _extent(field)
    axes.set(xlim=(left, right), ylim=(bottom, top))  # lines must not widen the map
    axes.set_xticks([])
    axes.set_yticks([])
    return image


def _extent(field: xr.DataArray) -> tuple[float, float, float, float]:
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


def _variable_label(field: xr.DataArray, variable: str) -> str:
    level = f" {int(field.level)} hPa" if "level" in field.coords else ""
    return f"{variable.replace('_', ' ')}{level}"


def _units(field: xr.DataArray) -> str:
    return field.attrs.get("units", "")


def _time_label(time: np.datetime64) -> str:
    """'YYYY-MM-DD HHh', the date format of the config's start dates."""
    return pd.Timestamp(time).strftime("%Y-%m-%d %Hh")


def _select(
    forecast: xr.Dataset, variable: str, level: float | None, init: int
) -> tuple[xr.DataArray, xr.Dataset]:
    """One init and (level of) one variable of a forecast: -> (member, prediction_timedelta,
    latitude, longitude), plus the one-variable forecast dataset used for truth alignment."""
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
    """Gallery PNG: ground truth on the first row, one member per row below, lead hours as
    columns, one colour scale for all panels with a colour bar in the variable's units.

    forecast: (time, member, prediction_timedelta, [level,] lat, lon); `init` indexes its time
    axis; `members` picks members (default all); truth: (time, [level,] lat, lon).
    """
    field, subset = _select(forecast, variable, level, init)
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
    figure, axes = _figure(rows, columns, figsize=figsize, dpi=GALLERY_DPI)
    for column in range(columns):
        truth_state = target.isel(prediction_timedelta=column)
        hours = leads[column] / np.timedelta64(1, "h")
        axes[0, column].set_title(
            f"{_time_label(truth_state.valid_time.values)}\n+{hours:g} h", fontsize=9
        )
        image = _draw_map(axes[0, column], truth_state, cmap, limits)
        for row, member in enumerate(field.member.values, start=1):
            state = field.sel(member=member).isel(prediction_timedelta=column)
            _draw_map(axes[row, column], state, cmap, limits)
    axes[0, 0].set_ylabel("ground truth", fontsize=9)
    for row, member in enumerate(field.member.values, start=1):
        axes[row, 0].set_ylabel(f"sample {member}", fontsize=9)
    colour_bar = figure.colorbar(image, ax=axes, shrink=0.8, pad=0.02)
    colour_bar.set_label(f"{_variable_label(field, variable)} [{_units(field)}]")
    start = _time_label(subset.time.values[0])
    # Two lines: a gallery of few columns is too narrow for the title on one.
    figure.suptitle(
        f"Unconditional samples (prior, not conditioned on observations)\n"
        f"{_variable_label(field, variable)}, start {start}, T = {trajectory_size} states"
    )
    return _save(figure, path)


def animation_frames(
    forecast: xr.Dataset,
    truth: xr.Dataset,
    variable: str,
    member: int,
    *,
    level: float | None = None,
    init: int = 0,
    indices: Sequence[int] | None = None,
    limits: tuple[float, float] | None = None,
    quantile: float = 0.01,
) -> Iterator[np.ndarray]:
    """Frames (H, W, 3) uint8 of one member beside the ground truth, one per state.

    States are read one at a time; `indices` (positions along prediction_timedelta, default
    all) lets several jobs render parts of one animation. Without `limits`, the colour scale
    comes from at most LIMIT_STATES states spread over the whole trajectory, the same in every
    job.
    """
    field, subset = _select(forecast, variable, level, init)
    field = field.sel(member=member)
    target = align_truth(truth, subset)[variable].isel(time=0)
    if level is not None:
        target = target.isel(level=0)
    count = field.sizes["prediction_timedelta"]
    if limits is None:
        sampled = np.unique(np.linspace(0, count - 1, min(count, LIMIT_STATES)).astype(int))
        limits = colour_limits(
            [field.isel(prediction_timedelta=sampled), target.isel(prediction_timedelta=sampled)],
            quantile,
        )
    cmap = COLORMAPS.get(variable, "viridis")
    figure, axes = _figure(1, 2, figsize=FRAME_SIZE_INCHES, dpi=FRAME_DPI)
    truth_axes, sample_axes = axes[0]
    first_truth = target.isel(prediction_timedelta=0).load()
    truth_image = _draw_map(truth_axes, first_truth, cmap, limits)
    sample_image = _draw_map(sample_axes, field.isel(prediction_timedelta=0).load(), cmap, limits)
    colour_bar = figure.colorbar(sample_image, ax=[truth_axes, sample_axes], shrink=0.8)
    colour_bar.set_label(f"{_variable_label(field, variable)} [{_units(field)}]")
    start = _time_label(subset.time.values[0])
    truth_axes.set_title("ground truth", fontsize=10)
    sample_axes.set_title(f"unconditional sample {member}", fontsize=10)
    figure.suptitle(f"{_variable_label(field, variable)}   0000-00-00 00h   (+000 h from {start})")
    # Lay the figure out once: every frame then keeps the same geometry, and drawing is faster.
    figure.canvas.draw()
    figure.set_layout_engine("none")
    for index in range(count) if indices is None else indices:
        state = target.isel(prediction_timedelta=index).load()
        sample = field.isel(prediction_timedelta=index).load()
        truth_image.set_data(state.sortby("latitude", ascending=False).values)
        sample_image.set_data(sample.sortby("latitude", ascending=False).values)
        hours = state.prediction_timedelta.values / np.timedelta64(1, "h")
        figure.suptitle(
            f"{_variable_label(field, variable)}   {_time_label(state.valid_time.values)}"
            f"   (+{hours:g} h from {start})"
        )
        figure.canvas.draw()
        yield np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def save_frames(frames: Iterable[np.ndarray], paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Write each frame to its PNG path (atomically); for animations split over jobs."""
    written = []
    for frame, path in zip(frames, paths, strict=True):
        with atomic_file(path) as temporary:
            iio.imwrite(temporary, frame)
        written.append(Path(path))
    return written


def load_frames(paths: Iterable[str | os.PathLike]) -> Iterator[np.ndarray]:
    """Read PNG frames back one at a time, in order."""
    for path in paths:
        yield iio.imread(path)[..., :3]


def write_animation(
    frames: Iterable[np.ndarray],
    gif_path: str | os.PathLike,
    mp4_path: str | os.PathLike | None = None,
    fps: float = 4.0,
) -> list[Path]:
    """Write frames (H, W, 3) uint8 as a GIF and, if asked and ffmpeg is available, an MP4.

    The frames are consumed once: the MP4 is streamed to ffmpeg, while the GIF encoder (Pillow,
    which imageio uses for GIF too) keeps palette frames of one byte per pixel until it writes;
    feeding it palette images directly holds a third of what imageio's RGB frames would.
    Returns the paths written.
    """
    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    written = [Path(gif_path)]
    # Exits run last-in first-out: ffmpeg is closed (the MP4 finished) before the renames.
    with ExitStack() as stack:
        gif_temporary = stack.enter_context(atomic_file(gif_path))
        video = None
        if mp4_path is not None and ffmpeg_available():
            import imageio_ffmpeg

            mp4_temporary = stack.enter_context(atomic_file(mp4_path))
            video = imageio_ffmpeg.write_frames(
                str(mp4_temporary),
                (width, height),
                fps=fps,
                macro_block_size=16,
                ffmpeg_log_level="error",
            )
            video.send(None)
            stack.callback(video.close)
            written.append(Path(mp4_path))

        def palette_frames() -> Iterator[Image.Image]:
            for frame in itertools.chain([first], frames):
                if video is not None:
                    video.send(np.ascontiguousarray(frame))
                yield Image.fromarray(frame).quantize(colors=255)

        images = palette_frames()
        next(images).save(
            gif_temporary,
            format="GIF",
            save_all=True,
            append_images=images,
            duration=1000 / fps,
            loop=0,
        )
    return written


def _panels(table: pd.DataFrame) -> list[tuple[str, object]]:
    """(variable, level) pairs of a tidy table, in order of appearance; level may be <NA>."""
    pairs = table[["variable", "level"]].drop_duplicates()
    return list(pairs.itertuples(index=False, name=None))


def _rows_of(table: pd.DataFrame, variable: str, level: object) -> pd.DataFrame:
    same_level = table["level"].isna() if pd.isna(level) else table["level"] == level
    return table[(table["variable"] == variable) & same_level.fillna(False)]


def _panel_title(variable: str, level: object) -> str:
    return variable.replace("_", " ") + ("" if pd.isna(level) else f" {int(level)} hPa")


def plot_scores(
    scores: pd.DataFrame, path: str | os.PathLike, units: Mapping[str, str] | None = None
) -> Path:
    """Each score vs lead time, one row per (variable, level), one column per metric, one line
    per source (model, persistence, climatology). `scores` has metrics.SCORE_COLUMNS; rows
    without a lead time (seam ratios) are ignored. `units` maps variable -> units."""
    scores = scores[scores["metric"].isin(METRIC_LABELS) & scores["lead_hours"].notna()]
    metrics = [metric for metric in METRIC_LABELS if metric in set(scores["metric"])]
    panels = _panels(scores)
    figure, axes = _figure(
        len(panels), len(metrics), figsize=(3.6 * len(metrics), 2.6 * len(panels) + 0.6)
    )
    for row, (variable, level) in enumerate(panels):
        rows = _rows_of(scores, variable, level)
        unit = (units or {}).get(variable, "")
        for column, metric in enumerate(metrics):
            ax = axes[row, column]
            for source, lines in rows[rows["metric"] == metric].groupby("source", sort=False):
                lines = lines.sort_values("lead_hours")
                ax.plot(
                    lines["lead_hours"],
                    lines["value"],
                    label=source,
                    markersize=3,
                    **SOURCE_STYLES.get(source, {}),
                )
            if metric == "spread_skill_ratio":
                ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
            label = METRIC_LABELS[metric]
            ax.set_ylabel(
                label if metric == "spread_skill_ratio" or not unit else f"{label} [{unit}]"
            )
            ax.set_title(f"{_panel_title(variable, level)}: {label}", fontsize=9)
            ax.grid(alpha=0.3)
            if row == len(panels) - 1:
                ax.set_xlabel("lead time [h]")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside upper right", ncols=len(labels))
    figure.suptitle("Scores of the unconditional ensemble vs ground truth (latitude-weighted)")
    return _save(figure, path)


def plot_spectra(
    spectra: pd.DataFrame, path: str | os.PathLike, units: Mapping[str, str] | None = None
) -> Path:
    """Zonal power spectra, samples vs truth, log-log, one panel per (variable, level).
    `spectra` has metrics.SPECTRUM_COLUMNS; wavenumber 0 (the zonal mean) is left out.
    `units` maps variable -> units."""
    spectra = spectra[spectra["wavenumber"] > 0]
    panels = _panels(spectra)
    columns = min(len(panels), 3)
    grid_rows = -(-len(panels) // columns)
    figure, axes = _figure(grid_rows, columns, figsize=(4.0 * columns, 3.0 * grid_rows + 0.5))
    for ax, (variable, level) in zip(axes.flat, panels, strict=False):
        rows = _rows_of(spectra, variable, level)
        for source, lines in rows.groupby("source", sort=False):
            lines = lines.sort_values("wavenumber")
            style = SOURCE_STYLES.get(source, {})
            ax.loglog(lines["wavenumber"], lines["value"], label=source, color=style.get("color"))
        ax.set_title(_panel_title(variable, level), fontsize=9)
        unit = (units or {}).get(variable)
        ax.set_xlabel("zonal wavenumber")
        ax.set_ylabel(f"power [({unit})^2]" if unit else "power")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle("Zonal power spectra: unconditional samples vs ground truth")
    return _save(figure, path)


def plot_seams(
    steps: pd.DataFrame, seams: Sequence[int], ratios: pd.DataFrame, path: str | os.PathLike
) -> Path:
    """Mean |x_{t+1} - x_t| against t for samples and truth, blanket seams as dotted lines,
    the seam-continuity ratio in each title. `steps` has metrics.STEP_COLUMNS, `ratios` the
    seam_ratio rows of metrics.seam_table."""
    panels = _panels(steps)
    columns = min(len(panels), 3)
    grid_rows = -(-len(panels) // columns)
    figure, axes = _figure(grid_rows, columns, figsize=(4.4 * columns, 3.0 * grid_rows + 0.5))
    for ax, (variable, level) in zip(axes.flat, panels, strict=False):
        for seam in seams:
            ax.axvline(seam + 0.5, color="grey", linestyle=":", linewidth=1)
        rows = _rows_of(steps, variable, level)
        for source, lines in rows.groupby("source", sort=False):
            lines = lines.sort_values("step")
            style = SOURCE_STYLES.get(source, {})
            ax.plot(lines["step"] + 0.5, lines["value"], label=source, color=style.get("color"))
        ratio = _rows_of(ratios, variable, level).set_index("source")["value"]
        shown = ", ".join(f"{source} {value:.2f}" for source, value in ratio.items())
        ax.set_title(f"{_panel_title(variable, level)}\nseam ratio: {shown}", fontsize=9)
        ax.set_xlabel("state index t (pair t, t+1)")
        ax.set_ylabel("mean |x(t+1) - x(t)|")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle("Blanket-seam continuity (dotted: seams; ratio 1.0 = no visible seam)")
    return _save(figure, path)

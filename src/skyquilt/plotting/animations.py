"""Animations of one member beside the truth: frames, GIF and (with ffmpeg) MP4."""

import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import xarray as xr
from PIL import Image

from skyquilt.io.atomic import atomic_file
from skyquilt.io.video import ffmpeg_available
from skyquilt.plotting.figures import new_figure
from skyquilt.plotting.maps import (
    COLORMAPS,
    LIMIT_STATES,
    colour_limits,
    draw_map,
    select,
    time_label,
    units,
    variable_label,
)
from skyquilt.scoring.baselines import align_truth

# Animation frames are a multiple of 16 pixels on each side, so that ffmpeg encodes them as they
# are instead of resizing them.
FRAME_SIZE_INCHES, FRAME_DPI = (9.6, 3.52), 100


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
    field, subset = select(forecast, variable, level, init)
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
    figure, axes = new_figure(1, 2, figsize=FRAME_SIZE_INCHES, dpi=FRAME_DPI)
    truth_axes, sample_axes = axes[0]
    first_truth = target.isel(prediction_timedelta=0).load()
    truth_image = draw_map(truth_axes, first_truth, cmap, limits)
    sample_image = draw_map(sample_axes, field.isel(prediction_timedelta=0).load(), cmap, limits)
    colour_bar = figure.colorbar(sample_image, ax=[truth_axes, sample_axes], shrink=0.8)
    colour_bar.set_label(f"{variable_label(field, variable)} [{units(field)}]")
    start = time_label(subset.time.values[0])
    truth_axes.set_title("ground truth", fontsize=10)
    sample_axes.set_title(f"unconditional sample {member}", fontsize=10)
    figure.suptitle(f"{variable_label(field, variable)}   0000-00-00 00h   (+000 h from {start})")
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
            f"{variable_label(field, variable)}   {time_label(state.valid_time.values)}"
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

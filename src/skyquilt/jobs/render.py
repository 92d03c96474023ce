"""The work of the render jobs: galleries, animation frames, animations.

Called by the thin scripts under scripts/. Decoded members are opened lazily and combined
into one WeatherBench2-style ensemble (time [inits], member, prediction_timedelta, [level,]
latitude, longitude); the truth is the dataset, also opened lazily. The plots read them a few
states at a time, so no job holds a whole ensemble in memory. This module does not import
torch, which keeps these many short jobs quick to start.
"""

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from skyquilt.io.atomic import atomic_directory
from skyquilt.io.fingerprints import INPUTS, mixed_inputs
from skyquilt.plotting import animations, maps

FRAME_NAME = "{index:05d}.png"


def open_ensemble(paths: Sequence[str | os.PathLike]) -> xr.Dataset:
    """Decoded members (each time [1] x member [1]) -> one lazy ensemble (time, member, ...).

    Attributes that differ between members (member, seed, wall time) are dropped. Members
    made from different inputs (another denoiser, decoder or grid, by content) are refused
    with a ValueError naming them and the fingerprints.
    """
    members = [xr.open_zarr(path, consolidated=True) for path in paths]
    mixed = mixed_inputs(
        {
            str(path): member.attrs.get(INPUTS, {})
            for path, member in zip(paths, members, strict=True)
        }
    )
    if mixed is not None:
        raise ValueError(f"decoded {mixed}; decode the stale ones again (delete them)")
    return xr.combine_by_coords(members, combine_attrs="drop_conflicts")


def open_truth(dataset: str | os.PathLike) -> xr.Dataset:
    """The hourly ground truth (time, [level,] latitude, longitude), lazily."""
    return xr.open_zarr(dataset)


def render_gallery(
    decoded: Sequence[str],
    dataset: str,
    path: str,
    variable: str,
    level: float | None,
    lead_hours: Sequence[float],
    quantile: float,
) -> None:
    """Gallery PNG of one start date: truth on top, the given decoded members below."""
    maps.gallery(
        open_ensemble(decoded),
        open_truth(dataset),
        variable,
        lead_hours,
        path,
        level=level,
        quantile=quantile,
    )


def member_frames(
    decoded: str,
    dataset: str,
    variable: str,
    level: float | None,
    indices: Sequence[int] | None,
    quantile: float,
) -> Iterator[np.ndarray]:
    """Frames (H, W, 3) of one decoded member beside the truth, rendered one at a time.

    `indices` picks the states, all of them when None.
    """
    forecast = open_ensemble([decoded])
    return animations.animation_frames(
        forecast,
        open_truth(dataset),
        variable,
        int(forecast.member.values[0]),
        level=level,
        indices=indices,
        quantile=quantile,
    )


def render_frames(
    decoded: str,
    dataset: str,
    directory: str,
    variable: str,
    level: float | None,
    indices: Sequence[int],
    quantile: float,
) -> None:
    """Write PNG frames of one member beside the truth for the states `indices`.

    They are written atomically into `directory` as 00000.png, 00001.png, ... (named by state
    index): one part of an animation split over several jobs.
    """
    frames = member_frames(decoded, dataset, variable, level, indices, quantile)
    with atomic_directory(Path(directory)) as temporary:
        temporary.mkdir()
        animations.save_frames(frames, [temporary / FRAME_NAME.format(index=i) for i in indices])


def animate_frames(
    frame_directories: Sequence[str], gif: str, mp4: str | None, fps: float
) -> list[Path]:
    """GIF (and MP4) of the PNG frames in `frame_directories`, taken in order."""
    paths = [
        path for directory in frame_directories for path in sorted(Path(directory).glob("*.png"))
    ]
    return animations.write_animation(animations.load_frames(paths), gif, mp4, fps=fps)


def animate_member(
    decoded: str,
    dataset: str,
    variable: str,
    level: float | None,
    quantile: float,
    gif: str,
    mp4: str | None,
    fps: float,
) -> list[Path]:
    """GIF (and MP4) of one member beside the truth, every frame rendered in this job.

    The frames are streamed straight to the writers (no PNG frames on disk).
    """
    frames = member_frames(decoded, dataset, variable, level, None, quantile)
    return animations.write_animation(frames, gif, mp4, fps=fps)

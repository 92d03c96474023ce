"""Timestamps of a trajectory and the calendar features the denoiser is conditioned on."""

import numpy as np
import torch
from torch import Tensor

HOURS_PER_DAY = 24.0
DAYS_PER_YEAR = 365.25
FEATURES = 4


def trajectory_times(start: np.datetime64, count: int, dt_hours: int) -> np.ndarray:
    """`count` timestamps from `start`, `dt_hours` apart, as datetime64[ns]."""
    start = np.datetime64(start, "ns")
    return start + np.arange(count) * np.timedelta64(dt_hours, "h")


def time_features(times: np.ndarray) -> Tensor:
    """Calendar features of each state: times (L,) datetime64 -> (L, 4) float32.

    [sin, cos] of the hour of day and of the day of year, so that midnight follows 23h
    and 31 December follows 1 January.
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    hours = (times - times.astype("datetime64[D]")) / np.timedelta64(1, "h")
    days = (times - times.astype("datetime64[Y]")) / np.timedelta64(1, "D")
    hour_angle = 2 * np.pi * hours / HOURS_PER_DAY
    day_angle = 2 * np.pi * days / DAYS_PER_YEAR
    features = np.stack(
        [np.sin(hour_angle), np.cos(hour_angle), np.sin(day_angle), np.cos(day_angle)], axis=-1
    )
    return torch.from_numpy(features.astype(np.float32))

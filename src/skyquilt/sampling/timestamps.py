"""Timestamps of a trajectory: its states are `blanket_dt` hours apart from the start date."""

import numpy as np


def trajectory_times(start: np.datetime64, count: int, dt_hours: int) -> np.ndarray:
    """`count` timestamps from `start`, `dt_hours` apart: (count,) datetime64[ns]."""
    start = np.datetime64(start, "ns")
    return start + np.arange(count) * np.timedelta64(dt_hours, "h")

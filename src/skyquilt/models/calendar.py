"""The calendar features every model is conditioned on: hour of day and day of year.

    f(t) = [sin, cos](2 pi hour / 24) ++ [sin, cos](2 pi day / 365.25)

so that midnight follows 23h and 31 December follows 1 January.
"""

import numpy as np
import torch
from torch import Tensor

HOURS_PER_DAY = 24.0
DAYS_PER_YEAR = 365.25
FEATURES = 4


def time_features(times: np.ndarray) -> Tensor:
    """Calendar features of each state.

    Arguments:
        times: (L,) datetime64 timestamps.

    Returns:
        (L, 4) float32 features.
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

"""Ensemble statistics over members read one at a time: mean, standard deviation, minimum,
maximum, and quantiles over members read a block at a time. Torch-free (numpy only).

Moments use Welford's running update, one member x_n at a time (n = 1, 2, ..., N):

    delta = x_n - mean_{n-1}
    mean_n = mean_{n-1} + delta / n
    M2_n = M2_{n-1} + delta * (x_n - mean_n)
    var = M2_N / (N - 1)         (ddof = 1, as numpy.std(ddof=1); NaN for N = 1)

and Chan et al.'s pairwise merge of two partial results (A, B) with n = n_A + n_B:

    delta = mean_B - mean_A
    mean = mean_A + delta * n_B / n
    M2 = M2_A + M2_B + delta**2 * n_A * n_B / n

Both work on deviations from the running mean, so fields of large magnitude and small spread
(geopotential ~5e4 m2 s-2 varying by a few units) keep their precision, unlike the textbook
sum(x**2) - N mean**2. Accumulators are float64 of the field's shape, whatever N is.

Quantiles need every member of a point at once; `quantile_blocks` reads the members of one
block (a latitude band of a few states) at a time, and `block_rows` sizes the band so that the
N members of a block fit a byte budget: memory is then independent of N.
"""

from collections.abc import Callable, Iterator, Sequence

import numpy as np

# numpy.quantile's default: linear interpolation between the closest ranks (Hyndman & Fan 7).
QUANTILE_METHOD = "linear"


class RunningMoments:
    """Running count, mean, M2 (sum of squared deviations), minimum and maximum of fields of
    one shape, updated a member at a time; float64 throughout."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.count = 0
        self.mean = np.zeros(shape, dtype=np.float64)
        self.m2 = np.zeros(shape, dtype=np.float64)
        self.minimum = np.full(shape, np.inf, dtype=np.float64)
        self.maximum = np.full(shape, -np.inf, dtype=np.float64)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one member's field (and of every statistic)."""
        return self.mean.shape

    def update(self, member: np.ndarray) -> None:
        """Add one member's field (of `shape`) by Welford's update; NaNs propagate."""
        values = np.array(member, dtype=np.float64)  # a copy: updated in place below
        if values.shape != self.shape:
            raise ValueError(f"a member of shape {values.shape} added to moments of {self.shape}")
        self.count += 1
        delta = values - self.mean
        self.mean += delta / self.count
        # delta * (x - new mean), in place: no third field-sized temporary.
        values -= self.mean
        values *= delta
        self.m2 += values
        np.fmin(self.minimum, member, out=self.minimum)
        np.fmax(self.maximum, member, out=self.maximum)
        # fmin/fmax skip NaNs; make a NaN member's points NaN as numpy's min/max would.
        missing = np.isnan(delta)
        if missing.any():
            self.minimum[missing] = np.nan
            self.maximum[missing] = np.nan

    def merge(self, other: "RunningMoments") -> "RunningMoments":
        """The moments of both sets of members together (Chan et al.'s pairwise update)."""
        if other.shape != self.shape:
            raise ValueError(f"moments of shape {other.shape} merged into {self.shape}")
        merged = RunningMoments(self.shape)
        merged.count = self.count + other.count
        if merged.count == 0:
            return merged
        delta = other.mean - self.mean
        weight = other.count / merged.count
        merged.mean = self.mean + delta * weight
        merged.m2 = self.m2 + other.m2 + delta**2 * self.count * weight
        merged.minimum = np.minimum(self.minimum, other.minimum)
        merged.maximum = np.maximum(self.maximum, other.maximum)
        return merged

    def variance(self, ddof: int = 1) -> np.ndarray:
        """M2 / (N - ddof): the unbiased ensemble variance by default; NaN when N <= ddof."""
        if self.count <= ddof:
            return np.full(self.shape, np.nan)
        return self.m2 / (self.count - ddof)

    def std(self, ddof: int = 1) -> np.ndarray:
        """Square root of `variance(ddof)`."""
        return np.sqrt(self.variance(ddof))


def running_moments(members: Iterator[np.ndarray] | Sequence[np.ndarray]) -> RunningMoments:
    """The moments of fields given one at a time (each of the same shape)."""
    moments = None
    for member in members:
        if moments is None:
            moments = RunningMoments(np.shape(member))
        moments.update(member)
    if moments is None:
        raise ValueError("no members to compute statistics of")
    return moments


def block_rows(members: int, row_bytes: int, rows: int, budget_bytes: int) -> int:
    """Latitude rows per quantile block: as many as keep `members` x rows x row_bytes (one
    member's bytes per row of the block) within `budget_bytes`, at least 1 and at most `rows`."""
    fitting = budget_bytes // max(1, members * row_bytes)
    return int(min(rows, max(1, fitting)))


def quantile_blocks(
    read: Callable[[int, slice], np.ndarray],
    members: int,
    rows: int,
    rows_per_block: int,
    quantiles: Sequence[float],
    axis: int = -2,
) -> np.ndarray:
    """Quantiles over members of a field read a latitude band at a time.

    read(member, rows) -> that member's field restricted to the latitude `rows` (a slice of
    the `axis` dimension), shape (..., band, W) for axis = -2. Each band of every member is
    stacked into one (N, ..., band, W) array, reduced by numpy.quantile, and placed in the
    result of shape (Q, ..., rows, W): the same numbers as numpy.quantile over the whole
    stacked ensemble along axis 0, with at most N x band rows in memory at once.
    """
    levels = np.asarray(quantiles, dtype=np.float64)
    result = None
    for start in range(0, rows, rows_per_block):
        band = slice(start, min(start + rows_per_block, rows))
        block = None
        for member in range(members):
            values = read(member, band)
            if block is None:
                block = np.empty((members, *values.shape), dtype=values.dtype)
            block[member] = values
        # overwrite_input: the block is ours; numpy may partition it in place (no copy).
        reduced = np.quantile(block, levels, axis=0, method=QUANTILE_METHOD, overwrite_input=True)
        del block
        if result is None:
            shape = list(reduced.shape)
            shape[axis] = rows
            result = np.empty(shape, dtype=reduced.dtype)
        index = [slice(None)] * result.ndim
        index[axis] = band
        result[tuple(index)] = reduced
    return result

"""Blanket arithmetic: split a trajectory into overlapping windows and stitch it back.

A trajectory of T states is covered by N blankets of K states with overlap O, stride
S = K - O, so that N = (T' - K) / S + 1 for a padded length T' >= max(T, K) with
(T' - K) % S == 0. Each blanket is scored independently; `fold` composes the blanket
outputs back into one trajectory.
"""

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from torch import Tensor

StitchMode = Literal["symmetric", "average"]
STITCH_MODES = ("symmetric", "average")
# How blankets compose: folded back alone, or corrected by a coarse model of block means
# (two-scale composition, `skyquilt.sampling.composition.CoarseScale`).
COMPOSITIONS = ("blankets", "two_scale")


def blocks_fit(blanket_size: int, overlap: int, block: int) -> bool:
    """Whether blocks of `block` states tile every padded trajectory: block divides K and O
    (then T' = K + j (K - O) is a multiple of it)."""
    return blanket_size % block == 0 and overlap % block == 0


def _check(blanket_size: int, overlap: int) -> int:
    if blanket_size < 1:
        raise ValueError(f"blanket_size must be >= 1, got {blanket_size}")
    if not 0 <= overlap < blanket_size:
        raise ValueError(f"overlap must be in [0, {blanket_size}), got {overlap}")
    return blanket_size - overlap


def padded_size(trajectory_size: int, blanket_size: int, overlap: int) -> int:
    """Smallest T' >= max(T, K) with (T' - K) % (K - O) == 0."""
    stride = _check(blanket_size, overlap)
    if trajectory_size < 1:
        raise ValueError(f"trajectory_size must be >= 1, got {trajectory_size}")
    excess = max(trajectory_size - blanket_size, 0)
    return blanket_size + -(-excess // stride) * stride


def blanket_count(trajectory_size: int, blanket_size: int, overlap: int) -> int:
    """N = (T' - K) / (K - O) + 1 blankets cover the padded trajectory."""
    stride = blanket_size - overlap
    return (padded_size(trajectory_size, blanket_size, overlap) - blanket_size) // stride + 1


def unfold(x: "Tensor", blanket_size: int, overlap: int, dim: int = 0) -> "Tensor":
    """Cut a padded trajectory into its blankets.

    Arguments:
        x: (..., T', ...) with the time axis at `dim`; T' must be a padded size, see
            `padded_size`.
        blanket_size: K.
        overlap: O, in [0, K).
        dim: the time axis.

    Returns:
        blankets: (N, ..., K, ...), a new leading blanket axis and the time axis shortened
        to K.
    """
    stride = _check(blanket_size, overlap)
    dim = dim % x.dim()
    length = x.shape[dim]
    if (length - blanket_size) % stride or length < blanket_size:
        raise ValueError(
            f"trajectory of {length} states is not a padded size for K={blanket_size}, "
            f"O={overlap}; pad it to {padded_size(length, blanket_size, overlap)}"
        )
    windows = x.unfold(dim, blanket_size, stride)  # (..., N, ..., K) with K last
    return windows.movedim(-1, dim + 1).movedim(dim, 0)


def _interior_kept(blanket_size: int, overlap: int) -> tuple[int, int]:
    """States [i, j) an interior blanket keeps in `symmetric` stitching: i = O // 2, j = i + S."""
    first_kept = overlap // 2
    return first_kept, first_kept + blanket_size - overlap


def _keep_ranges(count: int, blanket_size: int, overlap: int) -> list[tuple[int, int]]:
    """States [start, stop) of each blanket that `symmetric` stitching keeps."""
    first_kept, last_kept = _interior_kept(blanket_size, overlap)
    ranges = []
    for index in range(count):
        start = 0 if index == 0 else first_kept
        stop = blanket_size if index == count - 1 else last_kept
        ranges.append((start, stop))
    return ranges


def fold(
    blankets: "Tensor",
    overlap: int,
    mode: StitchMode = "symmetric",
    dim: int = 0,
) -> "Tensor":
    """Stitch blankets back into one trajectory, the inverse of `unfold`.

    symmetric: with S = K - O, i = O // 2 and j = i + S, the first blanket gives its
    states [0, j), each interior blanket [i, j) and the last [i, K), so every state
    comes from the blanket where it sits furthest from an edge.
    average: each state is the mean of every blanket that contains it.

    Arguments:
        blankets: (N, ..., K, ...) with the blanket's time axis at `dim`.
        overlap: O, in [0, K).
        mode: "symmetric" or "average".
        dim: the time axis, counted without the leading blanket axis.

    Returns:
        trajectory: (..., T', ...) with T' = (N - 1)(K - O) + K.
    """
    time_dim = dim % (blankets.dim() - 1)
    _check(blankets.shape[time_dim + 1], overlap)
    if mode == "symmetric":
        return _fold_symmetric(blankets, overlap, time_dim)
    if mode == "average":
        return _fold_average(blankets, overlap, time_dim)
    raise ValueError(f"unknown stitch mode {mode!r}; allowed: {', '.join(STITCH_MODES)}")


def _fold_symmetric(blankets: "Tensor", overlap: int, time_dim: int) -> "Tensor":
    """`fold` in `symmetric` mode: (N, ..., K, ...) -> (..., T', ...), time axis `time_dim`."""
    count = blankets.shape[0]
    blanket_size = blankets.shape[time_dim + 1]
    stride = blanket_size - overlap
    if count == 1:
        return blankets[0]
    # The kept ranges (see _keep_ranges) cut as three pieces, whatever N: the first
    # blanket's head, every interior blanket's [i, j) at once, and the last one's tail.
    first_kept, last_kept = _interior_kept(blanket_size, overlap)
    shape = list(blankets.shape[1:])
    shape[time_dim] = (count - 1) * stride + blanket_size
    folded = blankets.new_empty(shape)
    folded.narrow(time_dim, 0, last_kept).copy_(blankets[0].narrow(time_dim, 0, last_kept))
    interior = folded.narrow(time_dim, last_kept, (count - 2) * stride)
    interior.unflatten(time_dim, (count - 2, stride)).copy_(
        blankets[1:-1].narrow(time_dim + 1, first_kept, stride).movedim(0, time_dim)
    )
    tail = blanket_size - first_kept
    folded.narrow(time_dim, shape[time_dim] - tail, tail).copy_(
        blankets[-1].narrow(time_dim, first_kept, tail)
    )
    return folded


def _fold_average(blankets: "Tensor", overlap: int, time_dim: int) -> "Tensor":
    """`fold` in `average` mode: (N, ..., K, ...) -> (..., T', ...), time axis `time_dim`."""
    count = blankets.shape[0]
    blanket_size = blankets.shape[time_dim + 1]
    stride = blanket_size - overlap
    per_blanket = blankets.movedim(0, time_dim)  # (..., N, K, ...)
    length = (count - 1) * stride + blanket_size
    shape = list(per_blanket.shape)
    del shape[time_dim]
    shape[time_dim] = length
    total = per_blanket.new_zeros(shape)
    hits = per_blanket.new_zeros(length)
    for index in range(count):
        start = index * stride
        total.narrow(time_dim, start, blanket_size).add_(per_blanket.select(time_dim, index))
        hits[start : start + blanket_size] += 1
    view = [1] * total.dim()
    view[time_dim] = length
    return total / hits.view(view)

"""The coarse scale of two-scale composition: block means, their windows, and back to states.

Two-scale composition (`skyquilt.sampling.composition`) corrects the slow part of the fine
composed estimate with a coarse model of block means: `block_means` averages blocks of m
consecutive states, `cover` / `unfold_cover` / `fold_cover` tile the block means with coarse
windows (the block means of a padded trajectory need not be a padded size of the coarse
windows, so the windows are evenly spaced instead of a fixed stride), and `spread_blocks`
takes a value per block back to the states of the blocks.
"""

from typing import Literal

import torch
from torch import Tensor

SpreadMode = Literal["constant", "linear"]
SPREAD_MODES = ("constant", "linear")


def block_means(x: Tensor, block: int, dim: int = 0) -> Tensor:
    """Means of consecutive blocks of `block` states: (..., n m, ...) -> (..., n, ...) on `dim`."""
    dim = dim % x.dim()
    length = x.shape[dim]
    if block < 1 or length % block:
        raise ValueError(f"{length} states do not split into blocks of {block}")
    return x.unflatten(dim, (length // block, block)).mean(dim + 1)


def spread_blocks(values: Tensor, block: int, mode: SpreadMode, dim: int = 0) -> Tensor:
    """Values per block back to the states of the blocks: (..., n, ...) -> (..., n m, ...).

    constant: every state of a block gets its block's value.
    linear: the values sit at the block centres and are interpolated linearly between them,
    and held beyond the first and the last centre.
    """
    dim = dim % values.dim()
    if mode == "constant":
        return values.repeat_interleave(block, dim)
    if mode != "linear":
        raise ValueError(f"unknown spread {mode!r}; allowed: {', '.join(SPREAD_MODES)}")
    count = values.shape[dim]
    # State p of a block lies (p - (m - 1) / 2) / m blocks from the block's centre: it mixes
    # in that share of the neighbour on its side.
    offset = (torch.arange(block, dtype=torch.float64) - (block - 1) / 2) / block
    neighbour = torch.arange(count)[:, None] + torch.sign(offset).long()[None, :]
    neighbour = neighbour.clamp(0, count - 1).flatten().to(values.device)
    shape = [1] * values.dim()
    shape[dim] = count * block
    weight = offset.abs().repeat(count).to(values.device, values.dtype).view(shape)
    own = values.repeat_interleave(block, dim)
    return own + (values.index_select(dim, neighbour) - own) * weight


def cover(length: int, window: int, overlap: int) -> tuple[int, list[int]]:
    """Windows that tile `length` states: (their size, their starts).

    One window of all the states when length <= window; otherwise windows of `window`
    states, as few as overlapping by at least `overlap` allows, evenly spaced from the first
    state to the last.
    """
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in [0, {window}), got {overlap}")
    if length <= window:
        return length, [0]
    count = -(-(length - window) // (window - overlap)) + 1
    return window, [round(index * (length - window) / (count - 1)) for index in range(count)]


def unfold_cover(x: Tensor, window: int, starts: list[int], dim: int = 0) -> Tensor:
    """The windows of `cover`: (..., L, ...) -> (W, ..., window, ...), time axis at `dim`."""
    return torch.stack([x.narrow(dim, start, window) for start in starts])


def fold_cover(windows: Tensor, starts: list[int], length: int, dim: int = 0) -> Tensor:
    """Stitch the windows of `cover` back: every state from the window where it sits furthest
    from an edge (the earlier window on a tie), as `symmetric` stitching does.

    Arguments:
        windows: (W, ..., window, ...) with the window's time axis at `dim`.
        starts: the first state of each window.
        length: L, the states they cover.
        dim: the time axis, counted without the leading window axis.

    Returns:
        (..., L, ...).
    """
    time_dim = dim % (windows.dim() - 1)
    window = windows.shape[time_dim + 1]
    state = torch.arange(length)
    inside = state[None, :] - torch.tensor(starts)[:, None]  # (W, L): offset in each window
    margin = torch.minimum(inside, window - 1 - inside)
    chosen = margin.argmax(dim=0)  # the first of equal margins
    offset = inside[chosen, state]
    per_window = windows.movedim(time_dim + 1, 1)  # (W, window, ...)
    picked = per_window[chosen.to(windows.device), offset.to(windows.device)]  # (L, ...)
    return picked.movedim(0, time_dim)

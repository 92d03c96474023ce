"""The coarse scale's arithmetic: block means, coarse windows and spreading back to states."""

import pytest
import torch

from skyquilt.sampling.blankets import fold, unfold
from skyquilt.sampling.coarse import block_means, cover, fold_cover, spread_blocks, unfold_cover


def test_block_means_average_consecutive_states_along_any_axis():
    x = torch.arange(24.0).reshape(2, 12)
    expected = torch.tensor([[1.5, 5.5, 9.5], [13.5, 17.5, 21.5]])
    assert torch.equal(block_means(x, 4, dim=1), expected)
    assert torch.equal(block_means(x.T, 4, dim=0), block_means(x, 4, dim=1).T)
    with pytest.raises(ValueError, match="do not split into blocks of 5"):
        block_means(x, 5, dim=1)


def test_constant_spread_repeats_and_keeps_every_block_mean():
    values = torch.tensor([[1.0, -2.0, 3.0]])
    spread = spread_blocks(values, 4, "constant", dim=1)
    assert spread.tolist() == [[1.0] * 4 + [-2.0] * 4 + [3.0] * 4]
    assert torch.equal(block_means(spread, 4, dim=1), values)


def test_linear_spread_interpolates_between_block_centres_and_holds_at_the_ends():
    """Block means of a ramp sit on the ramp at the block centres: the linear spread gives
    the ramp back between the first and the last centre, and holds the end values beyond."""
    block, blocks = 4, 5
    ramp = torch.arange(block * blocks, dtype=torch.float64)[None]
    spread = spread_blocks(block_means(ramp, block, dim=1), block, "linear", dim=1)
    inside = slice(block // 2, block * blocks - block // 2)  # between the first and last centre
    torch.testing.assert_close(spread[:, inside], ramp[:, inside])
    assert spread[0, : block // 2].tolist() == [1.5, 1.5]
    assert spread[0, -(block // 2) :].tolist() == [17.5, 17.5]
    with pytest.raises(ValueError, match="unknown spread"):
        spread_blocks(ramp, block, "cubic", dim=1)


@pytest.mark.parametrize(("length", "window", "overlap"), [(5, 8, 2), (20, 8, 2), (23, 6, 3)])
def test_cover_tiles_any_length_with_windows_overlapping_at_least_as_asked(length, window, overlap):
    size, starts = cover(length, window, overlap)
    assert size == min(length, window)
    assert starts[0] == 0 and starts[-1] + size == length
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    assert all(size - gap >= overlap for gap in gaps)
    x = torch.arange(float(length))[None]
    windows = unfold_cover(x, size, starts, dim=1)
    assert windows.shape == (len(starts), 1, size)
    assert torch.equal(fold_cover(windows, starts, length, dim=1), x)


def test_fold_cover_of_evenly_strided_windows_is_symmetric_stitching():
    """Where the windows' starts are a padded size's (K = 8, O = 4), fold_cover keeps what
    `fold` keeps: each state from the window where it sits furthest from an edge."""
    length, window, overlap = 20, 8, 4
    size, starts = cover(length, window, overlap)
    assert starts == [0, 4, 8, 12]
    blankets = torch.randn(len(starts), 3, window)  # different values in every window
    assert torch.equal(fold_cover(blankets, starts, length, dim=1), fold(blankets, overlap, dim=1))
    x = torch.randn(3, length)
    assert torch.equal(unfold_cover(x, size, starts, dim=1), unfold(x, window, overlap, dim=1))

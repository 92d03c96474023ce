"""Blanket arithmetic: counts, padding, unfold and fold."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skyquilt.sampling.blankets import _keep_ranges, blanket_count, fold, padded_size, unfold


@pytest.mark.parametrize(
    ("size", "blanket", "overlap", "padded", "count"),
    [
        (72, 24, 4, 84, 4),
        (72, 24, 12, 72, 5),
        (10, 24, 4, 24, 1),
        (24, 24, 4, 24, 1),
        (25, 24, 0, 48, 2),
    ],
)
def test_padded_size_and_count_follow_the_design(size, blanket, overlap, padded, count):
    assert padded_size(size, blanket, overlap) == padded
    assert blanket_count(size, blanket, overlap) == count


def test_overlap_must_be_smaller_than_the_blanket():
    with pytest.raises(ValueError, match="overlap"):
        padded_size(72, 24, 24)


def test_unfold_gives_blankets_starting_every_stride():
    trajectory = torch.arange(20.0)[:, None]
    blankets = unfold(trajectory, blanket_size=8, overlap=4)
    assert blankets.shape == (4, 8, 1)
    assert blankets[:, 0, 0].tolist() == [0.0, 4.0, 8.0, 12.0]


def test_unfold_works_along_another_axis():
    batch = torch.randn(3, 20, 2, 5)
    blankets = unfold(batch, blanket_size=8, overlap=4, dim=1)
    assert blankets.shape == (4, 3, 8, 2, 5)
    assert torch.equal(blankets[2, :, 0], batch[:, 8])


def test_symmetric_fold_keeps_states_furthest_from_an_edge():
    # Blanket b holds the value b everywhere: the fold shows which blanket each state came from.
    blankets = torch.arange(4.0)[:, None].expand(4, 8)
    sources = fold(blankets, overlap=4).tolist()
    # S = 4, i = 2, j = 6: first [0, 6), interior [2, 6), last [2, 8).
    assert sources == [0] * 6 + [1] * 4 + [2] * 4 + [3] * 6


@settings(max_examples=60, deadline=None)
@given(blanket=st.integers(1, 12), count=st.integers(1, 9), data=st.data())
def test_symmetric_fold_takes_each_state_from_its_kept_range(blanket, count, data):
    """Along a non-leading time axis too: state t of the fold is state t - b S of blanket b
    for the one b whose kept range (_keep_ranges) holds it."""
    overlap = data.draw(st.integers(0, blanket - 1))
    stride = blanket - overlap
    # Blanket b, state k holds 100 b + k, for 2 samples of 3 channels: (N, 2, K, 3).
    labels = 100 * torch.arange(count)[:, None] + torch.arange(blanket)
    blankets = labels[:, None, :, None].expand(count, 2, blanket, 3).float()
    expected = [
        100 * index + k
        for index, (start, stop) in enumerate(_keep_ranges(count, blanket, overlap))
        for k in range(start, stop)
    ]
    folded = fold(blankets, overlap, dim=1)
    assert folded.shape == (2, (count - 1) * stride + blanket, 3)
    assert folded[1, :, 2].tolist() == expected and torch.equal(folded[0], folded[1])


def test_average_fold_averages_overlapping_states():
    blankets = torch.arange(2.0)[:, None].expand(2, 4)
    assert fold(blankets, overlap=2, mode="average").tolist() == [0, 0, 0.5, 0.5, 1, 1]


@settings(max_examples=60, deadline=None)
@given(
    blanket=st.integers(1, 12),
    data=st.data(),
    mode=st.sampled_from(["symmetric", "average"]),
)
def test_fold_inverts_unfold(blanket, data, mode):
    overlap = data.draw(st.integers(0, blanket - 1))
    size = data.draw(st.integers(1, 60))
    padded = padded_size(size, blanket, overlap)
    assert padded >= max(size, blanket) and (padded - blanket) % (blanket - overlap) == 0
    trajectory = torch.randn(padded, 3)
    blankets = unfold(trajectory, blanket, overlap)
    assert blankets.shape[0] == blanket_count(size, blanket, overlap)
    assert torch.allclose(fold(blankets, overlap, mode=mode), trajectory, atol=1e-6)

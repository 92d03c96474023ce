"""Ensemble statistics over members read one at a time (moments) or a band at a time
(quantiles) equal numpy's over the whole stacked ensemble."""

import numpy as np
import pytest

from skyquilt.scoring.statistics import (
    RunningMoments,
    block_rows,
    quantile_blocks,
    running_moments,
)


def assert_moments_match(moments: RunningMoments, stacked: np.ndarray, rtol: float) -> None:
    np.testing.assert_allclose(moments.mean, stacked.mean(axis=0), rtol=rtol)
    np.testing.assert_allclose(moments.std(), stacked.std(axis=0, ddof=1), rtol=rtol)
    np.testing.assert_array_equal(moments.minimum, stacked.min(axis=0))
    np.testing.assert_array_equal(moments.maximum, stacked.max(axis=0))
    assert moments.count == len(stacked)


def test_running_moments_equal_numpys_on_random_fields():
    stacked = np.random.default_rng(0).normal(3.0, 2.0, size=(7, 4, 5, 6))
    assert_moments_match(running_moments(stacked), stacked, rtol=1e-12)


def test_running_moments_of_many_members():
    stacked = np.random.default_rng(1).gamma(2.0, 3.0, size=(1000, 3, 8))
    assert_moments_match(running_moments(iter(stacked)), stacked, rtol=1e-10)


def test_large_offsets_with_small_spread_keep_their_precision():
    """Values around 1e4 with a spread of 1e-3: the naive sum(x**2) - N mean**2 loses every
    digit of the variance in float64; Welford's update keeps ~1e-9 relative error."""
    rng = np.random.default_rng(2)
    stacked = 1e4 + 1e-3 * rng.standard_normal((500, 10, 10))
    moments = running_moments(stacked)
    np.testing.assert_allclose(moments.mean, stacked.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(moments.std(), stacked.std(axis=0, ddof=1), rtol=1e-6)
    naive = (np.sum(stacked**2, axis=0) - 500 * stacked.mean(axis=0) ** 2) / 499
    assert np.abs(np.sqrt(np.abs(naive)) / stacked.std(axis=0, ddof=1) - 1).max() > 1e-2


def test_float32_members_accumulate_in_float64():
    rng = np.random.default_rng(3)
    stacked = (5.5e4 + 50 * rng.standard_normal((256, 6, 6))).astype(np.float32)
    moments = running_moments(stacked)
    reference = stacked.astype(np.float64)
    np.testing.assert_allclose(moments.mean, reference.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(moments.std(), reference.std(axis=0, ddof=1), rtol=1e-9)
    assert stacked.dtype == np.float32  # the members are not changed


def test_an_update_leaves_the_callers_float64_array_alone():
    member = np.arange(6.0).reshape(2, 3)
    moments = RunningMoments(member.shape)
    moments.update(member)
    moments.update(member + 1)
    np.testing.assert_array_equal(member, np.arange(6.0).reshape(2, 3))


def test_merged_partial_moments_equal_the_whole_ensemble():
    stacked = np.random.default_rng(4).normal(1e3, 1.0, size=(50, 4))
    merged = running_moments(stacked[:13]).merge(running_moments(stacked[13:]))
    assert_moments_match(merged, stacked, rtol=1e-10)


def test_one_member_has_no_spread():
    moments = running_moments([np.ones(3)])
    assert np.isnan(moments.std()).all()
    np.testing.assert_array_equal(moments.mean, np.ones(3))


def test_a_member_of_another_shape_is_refused():
    moments = RunningMoments((2, 3))
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        moments.update(np.zeros((3, 2)))


def test_a_nan_member_makes_its_points_nan_as_numpy_would():
    stacked = np.random.default_rng(5).normal(size=(4, 3))
    stacked[2, 1] = np.nan
    moments = running_moments(stacked)
    for statistic, expected in (
        (moments.mean, stacked.mean(axis=0)),
        (moments.std(), stacked.std(axis=0, ddof=1)),
        (moments.minimum, stacked.min(axis=0)),
        (moments.maximum, stacked.max(axis=0)),
    ):
        np.testing.assert_allclose(statistic, expected, rtol=1e-12)


@pytest.mark.parametrize("rows_per_block", [1, 2, 3, 7, 8])
def test_quantiles_by_latitude_band_equal_numpy_quantile(rows_per_block):
    stacked = np.random.default_rng(6).normal(size=(9, 5, 2, 7, 6)).astype(np.float32)
    quantiles = [0.05, 0.5, 0.95]
    reads = []

    def read(member, band):
        reads.append(band)
        return stacked[member][..., band, :]

    result = quantile_blocks(read, len(stacked), 7, rows_per_block, quantiles)
    expected = np.quantile(stacked, quantiles, axis=0)
    assert result.shape == (3, 5, 2, 7, 6) and result.dtype == expected.dtype
    np.testing.assert_array_equal(result, expected)
    assert len(reads) == len(stacked) * -(-7 // rows_per_block)
    assert max(band.stop - band.start for band in reads) == min(rows_per_block, 7)


def test_block_rows_fit_the_budget_and_never_drop_below_one():
    # 16 members x 1 kB per row: 1 MB holds 62 rows, capped by the 50 rows there are.
    assert block_rows(16, 1000, 50, 1_000_000) == 50
    assert block_rows(256, 1000, 50, 1_000_000) == 3
    assert block_rows(100_000, 1000, 50, 1_000_000) == 1

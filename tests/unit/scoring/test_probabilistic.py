"""Rank histograms and the energy score against hand and independent numpy computations."""

import numpy as np
import pytest
import scoringrules
import xarray as xr

from skyquilt.scoring.probabilistic import (
    energy_score,
    flatness,
    latitude_weights,
    rank_histogram,
    truth_ranks,
)

HOUR = np.timedelta64(1, "h")
DIMS = ("time", "member", "prediction_timedelta", "latitude", "longitude")


def case(members: np.ndarray, truth: np.ndarray, latitudes=(0.0,)) -> tuple[xr.Dataset, ...]:
    """members (init, member, lead, lat, lon), truth (init, lead, lat, lon) as datasets."""
    coords = {
        "time": np.datetime64("2000-01-01T00", "ns") + np.arange(members.shape[0]) * HOUR,
        "member": np.arange(members.shape[1]),
        "prediction_timedelta": np.arange(members.shape[2]) * HOUR,
        "latitude": list(latitudes),
        "longitude": np.arange(members.shape[4]) * 10.0,
    }
    forecast = xr.Dataset({"z": (DIMS, members)}, coords=coords)
    truth_dims = tuple(dim for dim in DIMS if dim != "member")
    observed = xr.Dataset(
        {"z": (truth_dims, truth)}, coords={k: v for k, v in coords.items() if k != "member"}
    )
    return forecast, observed


def test_rank_histogram_counts_ranks_by_hand():
    # Two members, four points on the equator, one init and lead: truth ranks 0, 1, 2, 2.
    members = np.array([[1.0, 1.0, 1.0, 1.0], [3.0, 3.0, 3.0, 3.0]])
    truth = np.array([0.0, 2.0, 4.0, 5.0])
    forecast, observed = case(members[None, :, None, None, :], truth[None, None, None, :])
    histogram = rank_histogram(forecast, observed, seed=0)
    assert histogram.z.dims == ("prediction_timedelta", "bin")
    np.testing.assert_allclose(histogram.z.values[0], [0.25, 0.25, 0.5])
    # |f - 1/3| summed: 1/12 + 1/12 + 1/6 = 1/3; over 2 (1 - 1/3) = 4/3 -> 0.25.
    assert float(flatness(histogram).z[0]) == pytest.approx(0.25)


def test_rank_histogram_weights_points_by_latitude():
    members = np.zeros((1, 2, 1, 2, 1))
    truth = np.array([-1.0, 1.0]).reshape(1, 1, 2, 1)  # rank 0 at 60 degrees, 2 at 0 degrees
    forecast, observed = case(members, truth, latitudes=(60.0, 0.0))
    histogram = rank_histogram(forecast, observed).z.values[0]
    weights = np.cos(np.deg2rad([60.0, 0.0]))
    np.testing.assert_allclose(histogram, [weights[0], 0.0, weights[1]] / weights.sum())


def test_ties_are_broken_uniformly_and_reproducibly():
    forecast = np.zeros((3, 60000))
    ranks = truth_ranks(forecast, np.zeros(60000), np.random.default_rng(0))
    assert np.bincount(ranks, minlength=4) / ranks.size == pytest.approx([0.25] * 4, abs=0.01)
    again = truth_ranks(forecast, np.zeros(60000), np.random.default_rng(0))
    np.testing.assert_array_equal(ranks, again)


def test_an_exchangeable_ensemble_has_a_flat_histogram():
    rng = np.random.default_rng(2)
    members = rng.normal(size=(20, 4, 2, 1, 50))
    forecast, observed = case(members, rng.normal(size=(20, 2, 1, 50)))
    histogram = rank_histogram(forecast, observed, seed=1)
    np.testing.assert_allclose(histogram.z.sum("bin"), 1.0)
    assert (flatness(histogram).z < 0.1).all()


def numpy_fair_energy_score(members: np.ndarray, truth: np.ndarray, weights: np.ndarray):
    """ES = E||X - y|| - 1/2 E||X - X'|| (fair: distinct pairs), weighted norm
    ||z|| = sqrt(mean(w z^2)): members (M, V), truth (V,), weights (V,)."""

    def norm(z):
        return np.sqrt(np.mean(weights * z**2, axis=-1))

    count = members.shape[0]
    error = np.mean([norm(member - truth) for member in members])
    pairs = sum(norm(a - b) for a in members for b in members) / (count * (count - 1))
    return error - 0.5 * pairs


def test_energy_score_matches_an_independent_numpy_computation(monkeypatch):
    rng = np.random.default_rng(4)
    latitudes = (60.0, 20.0, -30.0)
    members = rng.normal(size=(2, 5, 3, 3, 4))
    truth = rng.normal(size=(2, 3, 3, 4))
    forecast, observed = case(members, truth, latitudes=latitudes)
    weights = latitude_weights(xr.DataArray(list(latitudes), dims="latitude")).values
    flat_weights = np.repeat(weights, 4)
    expected = [
        np.mean(
            [
                numpy_fair_energy_score(
                    members[init, :, lead].reshape(5, -1),
                    truth[init, lead].ravel(),
                    flat_weights,
                )
                for init in range(2)
            ]
        )
        for lead in range(3)
    ]
    np.testing.assert_allclose(energy_score(forecast, observed).z.values, expected)
    # The same one member row at a time: memory is bounded, the numbers are not changed.
    monkeypatch.setattr("skyquilt.scoring.probabilistic.ENERGY_BUDGET", 1)
    np.testing.assert_allclose(energy_score(forecast, observed).z.values, expected)


@pytest.mark.parametrize("count", [1, 2, 7])
def test_energy_score_equals_scoringrules_es_ensemble(count):
    """scoringrules' es_ensemble (fair; nrg for one member) on the latitude-scaled fields."""
    rng = np.random.default_rng(5)
    latitudes = (60.0, 20.0, -30.0)
    members = rng.normal(size=(2, count, 3, 3, 4))
    truth = rng.normal(size=(2, 3, 3, 4))
    forecast, observed = case(members, truth, latitudes=latitudes)
    weights = latitude_weights(xr.DataArray(list(latitudes), dims="latitude")).values
    scale = np.repeat(np.sqrt(weights / 12), 4)
    expected = scoringrules.es_ensemble(
        (truth.reshape(2, 3, 12) * scale),
        (members.reshape(2, count, 3, 12) * scale).transpose(0, 2, 1, 3),
        m_axis=-2,
        v_axis=-1,
        estimator="fair" if count > 1 else "nrg",
        backend="numpy",
    ).mean(axis=0)
    np.testing.assert_allclose(energy_score(forecast, observed).z.values, expected)

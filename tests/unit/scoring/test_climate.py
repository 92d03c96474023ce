"""Climate diagnostics against independent computations: scaled, identical, AR(1) and
sinusoidal fields, seams with known jumps, block-by-block and piecewise sums."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from skyquilt.scoring import metrics
from skyquilt.scoring.climate import (
    CLIMATE_COLUMNS,
    FIDELITY_COLUMNS,
    TARGETS,
    climate_diagnostics,
    fidelity_table,
    misses,
    summarise,
    summary_scores,
)

START = np.datetime64("2000-01-01T00", "ns")
HOUR = np.timedelta64(1, "h")
LATITUDES = np.array([60.0, 20.0, -20.0, -60.0])
LONGITUDES = np.arange(16) * 22.5
WEIGHTS = np.cos(np.deg2rad(LATITUDES)) / np.cos(np.deg2rad(LATITUDES)).mean()


def forecast_from(values: np.ndarray) -> xr.Dataset:
    """Decoded members from values (init, member, lead, lat, lon), leads an hour apart."""
    dims = ("time", "member", "prediction_timedelta", "latitude", "longitude")
    return xr.Dataset(
        {"geopotential": (dims, values)},
        coords={
            "time": START + np.arange(values.shape[0]) * 24 * HOUR,
            "member": np.arange(values.shape[1]),
            "prediction_timedelta": np.arange(values.shape[2]) * HOUR,
            "latitude": LATITUDES,
            "longitude": LONGITUDES,
        },
    )


def truth_from(values: np.ndarray, hours: int = 1) -> xr.Dataset:
    """A stretch of truth from values (time, lat, lon), states `hours` apart."""
    return xr.Dataset(
        {"geopotential": (("time", "latitude", "longitude"), values)},
        coords={
            "time": START + np.arange(values.shape[0]) * hours * HOUR,
            "latitude": LATITUDES,
            "longitude": LONGITUDES,
        },
    )


def ratio(table: pd.DataFrame, metric: str) -> float:
    """The ratio of a single-row metric."""
    (value,) = table.loc[table["metric"] == metric, "ratio"]
    return value


def random_fields(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape) * 300 + 54000


def test_identical_samples_and_truth_give_ratios_of_one():
    values = random_fields((60, 4, 16))
    samples = forecast_from(values[None, None])
    table = climate_diagnostics(samples, truth_from(values), seams=[])
    assert list(table.columns) == CLIMATE_COLUMNS
    non_seam = table[table["metric"] != "seam_ratio"]
    np.testing.assert_allclose(non_seam["ratio"], 1.0, rtol=1e-9)
    assert np.isnan(ratio(table, "seam_ratio"))  # no seams: nothing to compare, not judged
    assert misses(table).empty


def test_scaled_anomalies_scale_std_and_change_and_square_the_spectrum():
    truth = random_fields((80, 4, 16), seed=1)
    mean = truth.mean()
    scaled = mean + 1.7 * (truth.reshape(1, 8, 10, 4, 16) - mean)  # the same states, scaled
    table = climate_diagnostics(forecast_from(scaled), truth_from(truth), seams=[])
    assert ratio(table, "std_ratio") == pytest.approx(1.7, rel=1e-9)
    spectrum = table[(table["metric"] == "spectrum_ratio") & (table["wavenumber"] > 0)]
    np.testing.assert_allclose(spectrum["ratio"], 1.7**2, rtol=1e-9)
    # The samples' pairs are the truth's but those across the 10-state pieces.
    change = np.abs(np.diff(truth, axis=0)) * WEIGHTS[:, None]
    inside = np.delete(change, np.arange(9, 79, 10), axis=0)
    expected = 1.7 * inside.mean() / change.mean()
    assert ratio(table, "hourly_change_ratio") == pytest.approx(expected, rel=1e-9)


def test_std_is_the_latitude_weighted_std_over_members_and_times():
    values = random_fields((2, 3, 6, 4, 16), seed=3)
    sums = summarise(forecast_from(values))
    weights = np.broadcast_to(WEIGHTS[:, None], values.shape)
    mean = np.average(values, weights=weights)
    expected = np.sqrt(np.average((values - mean) ** 2, weights=weights))
    assert float(sums.std["geopotential"]) == pytest.approx(expected, rel=1e-9)


def ar1(series: int, steps: int, correlation: float, seed: int) -> np.ndarray:
    """Stationary AR(1) of unit variance at every grid point: (series, steps, lat, lon)."""
    rng = np.random.default_rng(seed)
    values = np.empty((series, steps, len(LATITUDES), len(LONGITUDES)))
    values[:, 0] = rng.normal(size=values[:, 0].shape)
    innovation = np.sqrt(1 - correlation**2)
    for step in range(1, steps):
        values[:, step] = correlation * values[:, step - 1] + innovation * rng.normal(
            size=values[:, step].shape
        )
    return values


def test_hourly_change_of_an_ar1_is_its_expected_absolute_increment():
    """x(t+1) - x(t) ~ N(0, 2 (1 - phi)), so E|x(t+1) - x(t)| = sqrt(2 (1 - phi)) sqrt(2 / pi)."""
    correlation = 0.8
    sums = summarise(forecast_from(ar1(20, 200, correlation, seed=4)[None]))
    expected = np.sqrt(2 * (1 - correlation)) * np.sqrt(2 / np.pi)
    change = float(sums.steps["geopotential"].mean("step"))
    assert change == pytest.approx(expected, rel=0.01)


def test_truth_states_closer_than_the_samples_are_compared_at_the_samples_spacing():
    """Samples 2 h apart against hourly truth: pairs of the truth 2 h apart, i.e. lag 2."""
    hourly = ar1(1, 400, 0.9, seed=5)[0]
    samples = forecast_from(hourly[None, None, ::2]).assign_coords(
        prediction_timedelta=np.arange(200) * 2 * HOUR
    )
    table = climate_diagnostics(samples, truth_from(hourly), seams=[])
    assert ratio(table, "hourly_change_ratio") == pytest.approx(1.0, rel=0.02)


def test_a_pure_sinusoid_has_its_power_at_its_wavenumber_and_only_there_is_judged():
    longitude = np.deg2rad(LONGITUDES)
    wave = np.broadcast_to(np.cos(3 * longitude), (12, 4, 16))
    samples = forecast_from(2.0 * wave[None, None])
    table = climate_diagnostics(samples, truth_from(wave + 1e-3 * np.sin(5 * longitude)), [])
    spectrum = table[table["metric"] == "spectrum_ratio"].set_index("wavenumber")
    assert spectrum.loc[3, "model"] == pytest.approx(4.0 / 2)  # amplitude 2: A^2 / 2
    assert spectrum.loc[3, "ratio"] == pytest.approx(4.0)
    assert spectrum.index[spectrum["judged"]].tolist() == [3]  # k = 5 holds 1e-6 of the peak
    (worst,) = summary_scores(table).query("metric == 'spectrum_ratio_worst'")["value"]
    assert worst == pytest.approx(4.0)


def test_seam_ratio_is_the_change_across_seams_over_the_change_inside_blankets():
    increments = np.ones(9)
    increments[[2, 5]] = 3.0  # pairs (2, 3) and (5, 6) straddle seams
    states = np.concatenate([[0.0], np.cumsum(increments)])
    values = np.broadcast_to(states[None, None, :, None, None], (1, 2, 10, 4, 16))
    table = climate_diagnostics(forecast_from(values), truth_from(values[0, 0]), seams=[2, 5])
    seam = table[table["metric"] == "seam_ratio"].iloc[0]
    assert (seam["model"], seam["reference"], seam["ratio"]) == pytest.approx((3.0, 1.0, 3.0))
    assert seam["judged"]


def test_sums_block_by_block_and_piece_by_piece_equal_the_whole(monkeypatch):
    values = ar1(6, 12, 0.5, seed=6).reshape(2, 3, 12, 4, 16)
    whole = summarise(forecast_from(values), lag=2)
    pieces = summarise(forecast_from(values[:1]), lag=2) + summarise(
        forecast_from(values[1:]), lag=2
    )
    monkeypatch.setattr(metrics, "MEMORY_BUDGET", 1)  # one state per block
    blocked = summarise(forecast_from(values), lag=2)
    for sums in (pieces, blocked):
        xr.testing.assert_allclose(sums.std, whole.std)
        xr.testing.assert_allclose(sums.steps, whole.steps)
        xr.testing.assert_allclose(sums.spectrum, whole.spectrum)
    assert whole.steps.sizes["step"] == 10


def test_misses_are_the_judged_ratios_outside_their_bands():
    table = pd.DataFrame(
        {
            "variable": "u", "level": 500,
            "metric": ["std_ratio", "hourly_change_ratio", "seam_ratio", "spectrum_ratio",
                       "spectrum_ratio"],
            "wavenumber": [pd.NA, pd.NA, pd.NA, 1, 2],
            "model": 1.0, "reference": 1.0,
            "ratio": [1.05, 1.3, np.nan, 3.0, 3.0],
            "judged": [True, True, False, True, False],
        }
    )  # fmt: skip
    assert misses(table)["metric"].tolist() == ["hourly_change_ratio", "spectrum_ratio"]
    assert TARGETS["hourly_change_ratio"] == (0.8, 1.25)


def test_fidelity_ratios_divide_the_composed_ratio_by_the_single_one():
    values = ar1(4, 10, 0.5, seed=7).reshape(2, 2, 10, 4, 16)
    truth = truth_from(ar1(1, 50, 0.5, seed=8)[0])
    composed = climate_diagnostics(forecast_from(values * 1.2), truth, seams=[3])
    single = climate_diagnostics(forecast_from(values), truth, seams=[])
    table = fidelity_table(composed, single)
    assert list(table.columns) == FIDELITY_COLUMNS
    assert set(table["metric"]) == {"std_ratio", "hourly_change_ratio"}
    np.testing.assert_allclose(table["ratio"], 1.2)
    np.testing.assert_allclose(table["ratio"], table["composed"] / table["single"])

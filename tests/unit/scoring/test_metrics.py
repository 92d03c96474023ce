"""Scores, spectra and seam continuity against independent numpy computations."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from skyquilt.scoring import metrics
from skyquilt.scoring.metrics import (
    SCORE_COLUMNS,
    evaluate,
    latitude_weights,
    score_table,
    seam_pairs,
    seam_table,
    spectrum_table,
    step_sizes,
    step_table,
    table_from_dataset,
    table_to_dataset,
    zonal_power_spectrum,
)

START = np.datetime64("2000-01-01T00", "ns")
HOUR = np.timedelta64(1, "h")
LATITUDES = np.array([80.0, 40.0, 0.0, -40.0, -80.0])
LONGITUDES = np.arange(8) * 45.0
FORECAST_DIMS = ("time", "member", "prediction_timedelta", "level", "latitude", "longitude")


def truth_from(values: np.ndarray) -> xr.Dataset:
    """Hourly truth from START: values (time, level, lat, lon)."""
    dims = ("time", "level", "latitude", "longitude")
    return xr.Dataset(
        {"geopotential": (dims, values, {"units": "m2 s-2"})},
        coords={
            "time": START + np.arange(values.shape[0]) * HOUR,
            "level": [500, 850][: values.shape[1]],
            "latitude": LATITUDES[: values.shape[2]],
            "longitude": LONGITUDES[: values.shape[3]],
        },
    )


def forecast_from(values: np.ndarray, inits: list[int]) -> xr.Dataset:
    """Forecast from values (init, member, lead, level, lat, lon), leads 0, 1, ... hours."""
    return xr.Dataset(
        {"geopotential": (FORECAST_DIMS, values, {"units": "m2 s-2"})},
        coords={
            "time": START + np.array(inits) * HOUR,
            "member": np.arange(values.shape[1]),
            "prediction_timedelta": np.arange(values.shape[2]) * HOUR,
            "level": [500, 850][: values.shape[3]],
            "latitude": LATITUDES[: values.shape[4]],
            "longitude": LONGITUDES[: values.shape[5]],
        },
    )


def random_case(members: int = 3, seed: int = 0) -> tuple[xr.Dataset, xr.Dataset]:
    """Truth of 12 hours; a forecast with inits 0 and 2 h, 4 leads, 2 levels, 5 x 8 grid."""
    rng = np.random.default_rng(seed)
    truth = truth_from(rng.normal(size=(12, 2, 5, 8)))
    forecast = forecast_from(rng.normal(size=(2, members, 4, 2, 5, 8)), inits=[0, 2])
    return forecast, truth


def truth_at_valid_times(truth: xr.Dataset) -> np.ndarray:
    """(init, lead, level, lat, lon) for inits 0 and 2 h and leads 0..3 h, by plain indexing."""
    values = truth.geopotential.values
    return np.stack([values[init : init + 4] for init in (0, 2)])


def select(table: pd.DataFrame, metric: str, source: str = "model") -> np.ndarray:
    """Values (lead, level) of one metric from a tidy table."""
    rows = table[(table.metric == metric) & (table.source == source)]
    return rows.pivot(index="lead_hours", columns="level", values="value").to_numpy()


def numpy_weights() -> np.ndarray:
    weights = np.cos(np.deg2rad(LATITUDES))
    return (weights / weights.mean())[:, None]


def weighted_mean(field: np.ndarray) -> np.ndarray:
    """Mean over (init, lat, lon) of (init, lead, level, lat, lon) with cos weights -> (lead,
    level)."""
    return (field * numpy_weights()).mean(axis=(0, 3, 4))


def test_latitude_weights_follow_cosine_with_mean_one():
    weights = latitude_weights(xr.DataArray(LATITUDES, dims="latitude"))
    assert float(weights.mean()) == pytest.approx(1.0)
    # cos of 80, 40, 0 degrees: 0.17365, 0.76604, 1; their mean over the 5 rows is 0.57588.
    assert weights.values == pytest.approx(
        np.array([0.17365, 0.76604, 1.0, 0.76604, 0.17365]) / 0.57588, rel=1e-4
    )


def test_rmse_spread_and_ratio_match_numpy():
    forecast, truth = random_case(members=3)
    table = score_table(forecast, truth)
    values, target = forecast.geopotential.values, truth_at_valid_times(truth)
    skill = np.sqrt(weighted_mean((values.mean(axis=1) - target) ** 2))
    spread = np.sqrt(weighted_mean(values.var(axis=1, ddof=1)))
    np.testing.assert_allclose(select(table, "rmse"), skill)
    np.testing.assert_allclose(select(table, "spread"), spread)
    np.testing.assert_allclose(select(table, "spread_skill_ratio"), np.sqrt(4 / 3) * spread / skill)


def test_rmse_weights_an_error_by_the_cosine_of_its_latitude():
    truth = truth_from(np.zeros((4, 1, 5, 8)))
    for row, latitude in enumerate(LATITUDES):
        values = np.zeros((1, 2, 1, 1, 5, 8))
        values[..., row, :] = 1.0
        table = score_table(forecast_from(values, inits=[0]), truth)
        expected = np.sqrt(numpy_weights()[row, 0] / LATITUDES.size)
        assert select(table, "rmse")[0, 0] == pytest.approx(expected), latitude


@pytest.mark.parametrize(
    ("members", "observation", "expected"),
    [
        # fair CRPS of two members: (|x1 - y| + |x2 - y|) / 2 - |x1 - x2| / 2
        ((1.0, 3.0), 0.0, 1.0),
        ((-1.0, 2.0), 0.5, 0.0),
        ((2.0, 2.0), -1.0, 3.0),
    ],
)
def test_fair_crps_of_two_members_has_its_closed_form(members, observation, expected):
    truth = truth_from(np.full((4, 1, 5, 8), observation))
    values = np.broadcast_to(np.array(members)[None, :, None, None, None, None], (1, 2, 1, 1, 5, 8))
    table = score_table(forecast_from(values.copy(), inits=[0]), truth)
    assert select(table, "crps")[0, 0] == pytest.approx(expected)


def test_crps_matches_the_numpy_fair_estimator():
    forecast, truth = random_case(members=4)
    values, target = forecast.geopotential.values, truth_at_valid_times(truth)
    members = values.shape[1]
    error = np.abs(values - target[:, None]).mean(axis=1)
    pairs = np.abs(values[:, :, None] - values[:, None, :]).sum(axis=(1, 2))
    crps = error - pairs / (2 * members * (members - 1))
    table = score_table(forecast, truth)
    np.testing.assert_allclose(select(table, "crps"), weighted_mean(crps))


def test_a_single_member_scores_crps_as_mean_absolute_error_and_no_spread():
    forecast, truth = random_case(members=1)
    table = score_table(forecast, truth, source="persistence")
    target = truth_at_valid_times(truth)
    mae = weighted_mean(np.abs(forecast.geopotential.values[:, 0] - target))
    np.testing.assert_allclose(select(table, "crps", "persistence"), mae)
    # The energy score of one member is the field's latitude-weighted RMS error, per init.
    error = forecast.geopotential.values[:, 0] - target
    rms = np.sqrt((error**2 * numpy_weights()).mean(axis=(3, 4))).mean(axis=0)
    np.testing.assert_allclose(select(table, "energy_score", "persistence"), rms)
    assert set(table.metric) == {"rmse", "crps", "energy_score"}


def test_spread_skill_ratio_is_one_for_an_exchangeable_ensemble():
    # Truth and members drawn from the same distribution: the corrected ratio is 1, the
    # uncorrected one would be sqrt(M / (M + 1)) = 0.89 for M = 4.
    rng = np.random.default_rng(1)
    truth = xr.Dataset(
        {
            "geopotential": (
                ("time", "level", "latitude", "longitude"),
                rng.normal(size=(1, 1, 90, 180)),
            )
        },
        coords={
            "time": [START],
            "level": [500],
            "latitude": np.linspace(89, -89, 90),
            "longitude": np.arange(180) * 2.0,
        },
    )
    forecast = xr.Dataset(
        {"geopotential": (FORECAST_DIMS, rng.normal(size=(1, 4, 1, 1, 90, 180)))},
        coords={
            "time": [START],
            "member": np.arange(4),
            "prediction_timedelta": [np.timedelta64(0, "ns")],
        }
        | {name: truth[name] for name in ("level", "latitude", "longitude")},
    )
    table = score_table(forecast, truth)
    assert select(table, "spread_skill_ratio")[0, 0] == pytest.approx(1.0, abs=0.03)


def test_score_table_is_tidy():
    forecast, truth = random_case()
    table = score_table(forecast, truth)
    assert list(table.columns) == SCORE_COLUMNS
    ranks = {f"rank_histogram_bin_{rank}" for rank in range(4)}  # 3 members: ranks 0..3
    assert set(table.metric) == {*metrics.SCORES, "rank_histogram_flatness", *ranks}
    assert sorted(table.lead_hours.unique()) == [0.0, 1.0, 2.0, 3.0]
    assert sorted(table.level.unique()) == [500, 850]
    assert len(table) == 4 * 10 * 2


def test_scores_do_not_depend_on_how_leads_are_blocked(monkeypatch):
    forecast, truth = random_case()
    whole = score_table(forecast, truth)
    monkeypatch.setattr(metrics, "MEMORY_BUDGET", 1)  # one lead per block
    pd.testing.assert_frame_equal(score_table(forecast, truth), whole)


def test_a_variable_without_levels_gets_level_na():
    forecast, truth = random_case()
    forecast = forecast.isel(level=0, drop=True)
    truth = truth.isel(level=0, drop=True)
    table = score_table(forecast, truth)
    assert table.level.isna().all()
    assert len(table) == 4 * 10


def test_a_forecast_that_lost_its_level_is_not_broadcast_against_the_truth_levels():
    forecast, truth = random_case()
    with pytest.raises(ValueError, match="geopotential: truth dims"):
        score_table(forecast.isel(level=0, drop=True), truth)


def test_a_forecast_level_kept_as_a_scalar_selects_that_truth_level():
    forecast, truth = random_case()
    table = score_table(forecast.isel(level=1), truth)
    expected = score_table(forecast, truth)
    expected = expected[expected.level == 850].reset_index(drop=True)
    pd.testing.assert_frame_equal(table.drop(columns="level"), expected.drop(columns="level"))


def test_zonal_spectrum_of_a_wave_has_its_power_at_its_wavenumber():
    longitude = np.arange(16) * 22.5
    wave = 3.0 * np.cos(3 * np.deg2rad(longitude)) + 2.0
    field = xr.Dataset(
        {"z": (("latitude", "longitude"), np.tile(wave, (2, 1)))},
        coords={"latitude": [30.0, -30.0], "longitude": longitude},
    )
    power = zonal_power_spectrum(field).z.values
    expected = np.zeros(9)
    expected[0], expected[3] = 4.0, 4.5  # mean^2 and amplitude^2 / 2
    np.testing.assert_allclose(power, expected, atol=1e-12)


def test_zonal_spectrum_sums_to_the_mean_square():
    values = np.random.default_rng(2).normal(size=(5, 8))
    field = xr.Dataset(
        {"z": (("latitude", "longitude"), values)},
        coords={"latitude": LATITUDES, "longitude": LONGITUDES},
    )
    total = zonal_power_spectrum(field).z.sum("wavenumber")
    assert float(total) == pytest.approx(float((values**2 * numpy_weights()).mean()))


def test_spectrum_table_has_model_and_truth():
    forecast, truth = random_case()
    table = spectrum_table(forecast, truth)
    assert set(table.source) == {"model", "truth"}
    assert sorted(table.wavenumber.unique()) == list(range(5))
    model = table[(table.source == "model") & (table.level == 500)].sort_values("wavenumber")
    values = forecast.geopotential.sel(level=500).values
    power = np.abs(np.fft.rfft(values, axis=-1)) ** 2 / 64 * np.array([1, 2, 2, 2, 1])
    expected = (power * numpy_weights()).mean(axis=-2).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(model.value, expected)


@pytest.mark.parametrize(
    ("trajectory_size", "blanket_size", "overlap", "seams"),
    [
        (30, 8, 4, [5, 9, 13, 17, 21, 25]),
        (20, 6, 2, [4, 8, 12, 16]),
        (12, 8, 4, [5]),
        (9, 8, 3, [5]),  # odd overlap: blanket 0 keeps [0, 6)
        (10, 4, 0, [3, 7]),
        (8, 4, 0, [3]),  # the seam between states 7 and 8 lies past T
        (8, 8, 4, []),
        (5, 8, 4, []),
    ],
)
def test_seam_pairs(trajectory_size, blanket_size, overlap, seams):
    assert seam_pairs(trajectory_size, blanket_size, overlap).tolist() == seams


def ramp(jump_at: list[int], size: int = 12, jump: float = 0.0) -> xr.Dataset:
    """A forecast whose every grid value rises by 1 per state, plus `jump` after each seam."""
    steps = np.ones(size - 1)
    steps[jump_at] += jump
    values = np.concatenate([[0.0], np.cumsum(steps)])
    field = np.broadcast_to(values[None, None, :, None, None, None], (1, 2, size, 1, 5, 8))
    return forecast_from(field.copy(), inits=[0])


def test_step_sizes_are_the_mean_absolute_change_between_states(monkeypatch):
    forecast = ramp([3, 7], jump=2.0)
    expected = np.ones(11)
    expected[[3, 7]] = 3.0
    np.testing.assert_allclose(step_sizes(forecast).geopotential.values[:, 0], expected)
    monkeypatch.setattr(metrics, "MEMORY_BUDGET", 1)  # blocks of one lead must still chain
    np.testing.assert_allclose(step_sizes(forecast).geopotential.values[:, 0], expected)


def test_seam_ratio_is_one_without_a_seam_and_grows_with_a_jump():
    seams = seam_pairs(12, 4, 0)  # [3, 7]
    truth = truth_from(np.zeros((12, 1, 5, 8)))
    smooth = seam_table(step_table(ramp([]), truth), seams)
    jumpy = seam_table(step_table(ramp(list(seams), jump=2.0), truth), seams)
    assert list(smooth.columns) == SCORE_COLUMNS
    assert smooth[smooth.source == "model"].value.item() == pytest.approx(1.0)
    assert jumpy[jumpy.source == "model"].value.item() == pytest.approx(3.0)
    assert set(jumpy.metric) == {"seam_ratio"}


def test_seam_ratio_is_nan_without_seams():
    truth = truth_from(np.zeros((12, 1, 5, 8)))
    table = seam_table(step_table(ramp([]), truth), seam_pairs(12, 12, 4))
    assert table.value.isna().all()


def test_evaluate_scores_model_and_the_baselines():
    rng = np.random.default_rng(3)
    truth = truth_from(rng.normal(size=(48, 2, 5, 8)))
    forecast = forecast_from(rng.normal(size=(1, 2, 12, 2, 5, 8)), inits=[30])
    result = evaluate(forecast, truth, ("2000-01-01", "2000-01-01"), blanket_size=4, overlap=2)
    scores = result.scores
    sources = {"model", "persistence", "climatology", "climatology_ensemble", "truth"}
    assert set(scores.source) == sources
    for source in ("model", "persistence", "climatology", "climatology_ensemble"):
        assert set(scores[scores.source == source].metric) >= {"rmse", "crps", "energy_score"}
    for source in ("model", "climatology_ensemble"):  # the same metrics, two members each
        names = set(scores[scores.source == source].metric) - {"seam_ratio"}
        assert names == {*metrics.SCORES, "rank_histogram_flatness"} | {
            f"rank_histogram_bin_{rank}" for rank in range(3)
        }
    persistence_rmse = select(scores, "rmse", "persistence")
    np.testing.assert_allclose(persistence_rmse[0], 0.0)  # lead 0 is the initial state
    assert result.seams.tolist() == [2, 4, 6, 8]
    assert (scores.metric == "seam_ratio").sum() == 2 * 2
    assert set(result.spectra.source) == {"model", "truth"}


def test_a_climatology_ensemble_the_period_cannot_supply_is_left_out():
    """Trajectories of 30 states from a climatology period of 24 hours: no same-season
    trajectory that long exists there, so the climatology ensemble is left out, saying why,
    and every other score is made."""
    rng = np.random.default_rng(4)
    truth = truth_from(rng.normal(size=(80, 1, 5, 8)))
    forecast = forecast_from(rng.normal(size=(1, 2, 30, 1, 5, 8)), inits=[48])
    result = evaluate(forecast, truth, ("2000-01-01", "2000-01-01"), blanket_size=4, overlap=2)
    assert set(result.scores.source) == {"model", "persistence", "climatology", "truth"}
    assert list(result.left_out) == ["climatology_ensemble"]
    assert "no trajectory of the climatology period" in result.left_out["climatology_ensemble"]


def test_a_score_table_survives_a_zarr_round_trip(tmp_path):
    forecast, truth = random_case()
    table = pd.concat(
        [
            score_table(forecast, truth),
            score_table(forecast.isel(level=0, drop=True), truth.isel(level=0, drop=True)),
        ],
        ignore_index=True,
    )
    table_to_dataset(table).to_zarr(tmp_path / "metrics.zarr", consolidated=False)
    stored = xr.open_zarr(tmp_path / "metrics.zarr", consolidated=False)
    back = table_from_dataset(stored, SCORE_COLUMNS)
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    assert back.level.isna().sum() == len(table) // 3  # one of three levels has none

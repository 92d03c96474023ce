"""Truth alignment, persistence and climatology on a small synthetic hourly truth."""

import numpy as np
import pytest
import xarray as xr

from skyquilt.scoring.baselines import (
    align_truth,
    analogue_starts,
    climatology,
    climatology_ensemble,
    persistence,
    valid_times,
)

START = np.datetime64("2000-01-01T00", "ns")
HOUR = np.timedelta64(1, "h")


def hourly_truth(days: int = 4) -> xr.Dataset:
    """z(t, level, lat, lon) = hour index t + 1000 * level index: every value names its time."""
    hours = np.arange(days * 24)
    values = hours[:, None, None, None] + 1000.0 * np.arange(2)[None, :, None, None]
    values = np.broadcast_to(values, (hours.size, 2, 3, 4)).copy()
    return xr.Dataset(
        {"geopotential": (("time", "level", "latitude", "longitude"), values, {"units": "m2 s-2"})},
        coords={
            "time": START + hours * HOUR,
            "level": [500, 850],
            "latitude": [60.0, 0.0, -60.0],
            "longitude": [0.0, 90.0, 180.0, 270.0],
        },
    )


def forecast_like(truth: xr.Dataset, inits: list[int], leads: list[int]) -> xr.Dataset:
    """A 2-member forecast of zeros, inits and leads in hours."""
    shape = (len(inits), 2, len(leads), 2, 3, 4)
    dims = ("time", "member", "prediction_timedelta", "level", "latitude", "longitude")
    return xr.Dataset(
        {"geopotential": (dims, np.zeros(shape))},
        coords={
            "time": START + np.array(inits) * HOUR,
            "member": [0, 1],
            "prediction_timedelta": np.array(leads) * HOUR,
            "level": [500, 850],
            "latitude": truth.latitude,
            "longitude": truth.longitude,
        },
    )


def test_valid_times_add_every_lead_to_every_init():
    times = valid_times(START + np.array([0, 12]) * HOUR, np.array([0, 6]) * HOUR)
    assert times.dims == ("time", "prediction_timedelta")
    expected = START + np.array([[0, 6], [12, 18]]) * HOUR
    np.testing.assert_array_equal(times.values, expected)


def test_align_truth_takes_the_truth_at_init_plus_lead():
    truth = hourly_truth()
    aligned = align_truth(truth, forecast_like(truth, inits=[0, 24], leads=[0, 6, 30]))
    assert aligned.geopotential.dims == (
        "time",
        "prediction_timedelta",
        "level",
        "latitude",
        "longitude",
    )
    hours = aligned.geopotential.isel(level=0, latitude=0, longitude=0).values
    np.testing.assert_array_equal(hours, [[0, 6, 30], [24, 30, 54]])
    np.testing.assert_array_equal(aligned.valid_time.values, START + hours * HOUR)


def test_align_truth_selects_the_forecast_levels():
    truth = hourly_truth()
    forecast = forecast_like(truth, inits=[0], leads=[0]).sel(level=[850])
    aligned = align_truth(truth, forecast)
    assert aligned.level.values.tolist() == [850]
    assert float(aligned.geopotential.max()) == 1000.0


def test_align_truth_names_missing_valid_times_and_the_dataset_range():
    truth = hourly_truth(days=2)
    with pytest.raises(KeyError, match="2000-01-03T00.*covers 2000-01-01T00 to 2000-01-02T23"):
        align_truth(truth, forecast_like(truth, inits=[24], leads=[0, 24]))


def test_align_truth_rejects_another_grid():
    truth = hourly_truth()
    forecast = forecast_like(truth, inits=[0], leads=[0]).assign_coords(latitude=[50.0, 0, -50])
    with pytest.raises(ValueError, match="latitude"):
        align_truth(truth, forecast)


def test_persistence_repeats_the_initial_state_with_one_member():
    truth = hourly_truth()
    leads = np.array([0, 6, 48]) * HOUR
    forecast = persistence(truth, START + np.array([0, 12]) * HOUR, leads)
    assert forecast.geopotential.dims[:3] == ("time", "member", "prediction_timedelta")
    assert forecast.sizes["member"] == 1
    values = forecast.geopotential.isel(member=0, level=0, latitude=0, longitude=0).values
    np.testing.assert_array_equal(values, [[0, 0, 0], [12, 12, 12]])
    assert forecast.geopotential.attrs["units"] == "m2 s-2"


def test_climatology_is_the_training_mean_at_each_valid_hour():
    truth = hourly_truth(days=4)
    forecast = climatology(
        truth, START + np.array([72]) * HOUR, np.array([0, 6]) * HOUR, ("2000-01-01", "2000-01-03")
    )
    assert forecast.attrs["climatology"] == "hour_of_day"
    assert forecast.sizes["member"] == 1
    values = forecast.geopotential.isel(time=0, member=0, level=0, latitude=0, longitude=0)
    # Hour h of days 0, 1, 2 has values h, 24 + h, 48 + h: mean 24 + h.
    np.testing.assert_array_equal(values.values, [24, 30])
    assert forecast.geopotential.attrs["units"] == "m2 s-2"


def test_climatology_falls_back_to_the_plain_mean_without_the_needed_hours():
    truth = hourly_truth(days=4)
    twice_daily = truth.sel(time=truth.time.dt.hour.isin([0, 12]))
    forecast = climatology(
        twice_daily,
        START + np.array([72]) * HOUR,
        np.array([6]) * HOUR,
        ("2000-01-01", "2000-01-02"),
    )
    assert forecast.attrs["climatology"] == "all_hours"
    value = forecast.geopotential.isel(
        time=0, member=0, prediction_timedelta=0, level=0, latitude=0, longitude=0
    )
    assert float(value) == np.mean([0, 12, 24, 36])


def test_climatology_rejects_a_period_without_truth():
    with pytest.raises(ValueError, match="1990-01-01 to 1990-12-31"):
        climatology(hourly_truth(), START, np.array([0]) * HOUR, ("1990-01-01", "1990-12-31"))


def long_truth() -> xr.Dataset:
    """Hourly values naming their time, over 2000 and 2001 (one level, a 1 x 2 grid)."""
    times = np.arange("2000-01-01T00", "2002-01-01T00", dtype="datetime64[h]")
    values = np.arange(times.size, dtype=np.float64)[:, None, None]
    return xr.Dataset(
        {"z": (("time", "latitude", "longitude"), np.repeat(values, 2, axis=2))},
        coords={
            "time": times.astype("datetime64[ns]"),
            "latitude": [0.0],
            "longitude": [0.0, 180.0],
        },
    )


def test_climatology_ensemble_draws_trajectories_at_the_hour_and_season_of_each_init():
    truth = long_truth()
    inits = np.array(["2001-06-15T06", "2001-12-30T18"], dtype="datetime64[ns]")
    leads = np.arange(0, 12, 3) * HOUR
    period = ("2000-01-01", "2000-12-31")
    ensemble = climatology_ensemble(truth, inits, leads, period, members=20, seed=7)
    assert ensemble.z.dims == ("time", "member", "prediction_timedelta", "latitude", "longitude")
    assert ensemble.sizes["member"] == 20
    starts = ensemble.analogue_start.values.astype("datetime64[h]")
    hours = starts.astype(np.int64) % 24
    assert (hours[0] == 6).all() and (hours[1] == 18).all()
    # Every start lies in 2000 within 15 days of year of June 15 / Dec 30 (wrapping round).
    assert (starts[0] >= np.datetime64("2000-05-31T00")).all()
    assert (starts[0] <= np.datetime64("2000-06-30T23")).all()
    early = starts[1] <= np.datetime64("2000-01-14T23")
    late = starts[1] >= np.datetime64("2000-12-14T00")  # 2000 is a leap year
    assert (early | late).all() and early.any()
    # The whole member stays in the period: nothing after 2000-12-31T23.
    assert (starts[1] + np.timedelta64(9, "h") <= np.datetime64("2000-12-31T23")).all()
    # Each member is the truth from its start: values name their hour.
    first_hour = truth.time.values[0].astype("datetime64[h]")
    expected = (starts[:, :, None] - first_hour).astype(np.int64) + np.arange(0, 12, 3)
    np.testing.assert_array_equal(ensemble.z.values[..., 0, 1], expected)
    # Reproducible from the seed, different for another.
    again = climatology_ensemble(truth, inits, leads, period, members=20, seed=7)
    np.testing.assert_array_equal(again.analogue_start, ensemble.analogue_start)
    other = climatology_ensemble(truth, inits, leads, period, members=20, seed=8)
    assert not np.array_equal(other.analogue_start, ensemble.analogue_start)


def test_analogue_starts_keep_every_lead_inside_the_period():
    truth = hourly_truth(days=4)
    init = np.array([START + 72 * HOUR])
    starts = analogue_starts(
        truth.time.values, init, np.arange(8) * HOUR, ("2000-01-01", "2000-01-03")
    )
    assert starts[0].astype("datetime64[h]").tolist() == [
        np.datetime64(day, "h").astype(object)
        for day in ("2000-01-01T00", "2000-01-02T00", "2000-01-03T00")
    ]
    with pytest.raises(ValueError, match="no trajectory of the climatology period"):
        analogue_starts(truth.time.values, init, np.arange(30) * HOUR, ("2000-01-01", "2000-01-01"))

"""The demo dataset: WeatherBench2 layout, units, statistics and the held-out period."""

import json

import numpy as np
import pytest
import xarray as xr

from skyquilt.demo.dataset import (
    VARIABLES,
    area_weights,
    read_stats,
    simulate_dataset,
    stats_path,
    write_dataset,
)
from skyquilt.planning.demo_settings import DatasetSettings, held_out_mask

TINY = {
    "start": "2000-04-01",
    "days": 2,
    "grid": [16, 32],
    "spinup_days": 0,
    "held_out": ["2000-04-02", "2000-04-02"],
}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A two-day dataset written to disk: its path and settings."""
    settings = DatasetSettings.from_config(TINY)
    path = tmp_path_factory.mktemp("demo") / "era5_demo.zarr"
    write_dataset(simulate_dataset(settings), path, settings.held_out)
    return path, settings


def test_dataset_has_the_weatherbench2_layout(written):
    path, _ = written
    dataset = xr.open_zarr(path)
    assert dataset.time.dtype == np.dtype("datetime64[ns]")
    assert (np.diff(dataset.time.values) == np.timedelta64(1, "h")).all()
    assert dataset.time.values[0] == np.datetime64("2000-04-01T00")
    assert dataset.sizes["time"] == 48
    assert dataset.level.values.tolist() == [500]
    latitude, longitude = dataset.latitude.values, dataset.longitude.values
    assert latitude[0] == 90 and latitude[-1] == -90 and (np.diff(latitude) < 0).all()
    assert longitude[0] == 0 and longitude[-1] < 360 and np.allclose(np.diff(longitude), 11.25)
    for name in VARIABLES:
        assert dataset[name].dims == ("time", "level", "latitude", "longitude")
        assert dataset[name].dtype == np.float32
        assert np.isfinite(dataset[name].values).all()


def test_variables_carry_era5_units_and_long_names(written):
    dataset = xr.open_zarr(written[0])
    assert set(dataset.data_vars) == set(VARIABLES)
    assert dataset.geopotential.attrs["units"] == "m**2 s**-2"
    assert dataset.u_component_of_wind.attrs["units"] == "m s**-1"
    assert dataset.v_component_of_wind.attrs["long_name"] == "V component of wind"


def test_values_are_those_of_a_500_hpa_atmosphere(written):
    dataset = xr.open_zarr(written[0])
    assert 45_000 < float(dataset.geopotential.mean()) < 60_000
    assert 1 < float(dataset.u_component_of_wind.std()) < 50
    assert float(np.abs(dataset.v_component_of_wind).max()) < 150


def test_statistics_sit_beside_the_store_and_exclude_the_held_out_period(written):
    path, settings = written
    assert stats_path(path) == path.with_name("era5_demo.stats.json")
    stats = read_stats(path)
    training = xr.open_zarr(path).sel(time=slice("2000-04-01", "2000-04-01T23"))
    for name in VARIABLES:
        assert stats[name]["mean"] == pytest.approx(float(training[name].mean()), rel=1e-5)
        assert stats[name]["std"] == pytest.approx(float(training[name].std()), rel=1e-5)
    assert json.loads(stats_path(path).read_text())["held_out"] == list(settings.held_out)


def test_writing_leaves_no_temporary_files(written):
    path, _ = written
    assert sorted(p.name for p in path.parent.iterdir()) == ["era5_demo.stats.json", path.name]


def test_held_out_period_includes_its_last_day():
    times = np.datetime64("2000-03-31T23", "ns") + np.arange(4) * np.timedelta64(24, "h")
    mask = held_out_mask(times, ("2000-04-01", "2000-04-02"))
    assert mask.tolist() == [False, True, True, False]


def test_settings_take_defaults_for_missing_keys():
    settings = DatasetSettings.from_config({"grid": [16, 32], "forcing": {"stirring": 0.0}})
    assert settings.grid == (16, 32) and settings.days == 366
    assert settings.forcing.stirring == 0.0 and settings.forcing.drag_days == 10.0


def test_area_weights_have_mean_one_and_favour_the_equator():
    weights = area_weights(np.linspace(90, -90, 17))
    assert float(weights.mean()) == pytest.approx(1.0)
    assert weights[8] == weights.max() and 0 < weights[0] < weights[1]

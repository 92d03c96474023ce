"""The forced shallow-water model behind the demo dataset."""

import numpy as np
import pytest
import torch

from skyquilt.demo.dataset import latitudes
from skyquilt.demo.shallow_water import (
    ForcedShallowWaterSolver,
    equilibrium_geopotential,
    simulate,
    truncation,
)
from skyquilt.planning.demo_settings import Forcing

NLAT, NLON = 16, 32


def hourly(start: str, hours: int) -> np.ndarray:
    return np.datetime64(start, "ns") + np.arange(hours) * np.timedelta64(1, "h")


def kinetic_energy(states: np.ndarray) -> float:
    """Area-weighted mean of (u^2 + v^2) / 2 over states (T, 3, H, W)."""
    weights = np.cos(np.deg2rad(latitudes(states.shape[-2])))[:, None]
    return float((0.5 * (states[:, 1] ** 2 + states[:, 2] ** 2) * weights).mean() / weights.mean())


@pytest.fixture(scope="module")
def run() -> np.ndarray:
    """20 days after a 5-day spin-up on the test grid: (480, 3, 16, 32)."""
    return simulate(NLAT, NLON, hourly("2000-01-01", 480), 120, Forcing(), seed=1)


def test_forced_run_keeps_energy_and_variance_stationary(run):
    first, last = run[:168], run[-168:]
    assert np.isfinite(run).all()
    assert 0.6 < kinetic_energy(last) / kinetic_energy(first) < 1.6
    for variable in range(3):
        assert 0.6 < last[:, variable].std() / first[:, variable].std() < 1.6


def test_without_stirring_the_eddies_die_out():
    """The random stirring is what keeps the weather going (a short drag time makes the
    contrast show within a few days)."""

    def eddy_v(forcing: Forcing) -> float:
        states = simulate(NLAT, NLON, hourly("2000-01-01", 240), 0, forcing, seed=1)[-72:, 2]
        return float((states - states.mean(axis=-1, keepdims=True)).std())

    assert eddy_v(Forcing(stirring=0.0, drag_days=2.0)) < 0.3 * eddy_v(Forcing(drag_days=2.0))


def test_simulation_is_reproducible_from_its_seed():
    times = hourly("2000-01-01", 6)
    first = simulate(NLAT, NLON, times, 0, Forcing(), seed=3)
    assert np.array_equal(first, simulate(NLAT, NLON, times, 0, Forcing(), seed=3))
    assert not np.array_equal(first, simulate(NLAT, NLON, times, 0, Forcing(), seed=4))


def test_winds_are_close_to_geostrophic_balance_with_the_geopotential(run):
    """v ~ (1 / (f a cos(lat))) d(phi)/d(lon) in mid-latitudes: checks the sign conventions."""
    lat = np.deg2rad(latitudes(NLAT))
    phi, v = run[:, 0], run[:, 2]
    dlon = 2 * np.pi / NLON
    dphi_dlon = (np.roll(phi, -1, -1) - np.roll(phi, 1, -1)) / (2 * dlon)
    coriolis = 2 * 7.292e-5 * np.sin(lat)
    geostrophic = dphi_dlon / (coriolis * 6.37122e6 * np.cos(lat))[:, None]
    north = (lat > np.deg2rad(30)) & (lat < np.deg2rad(70))
    correlation = np.corrcoef(v[:, north].ravel(), geostrophic[:, north].ravel())[0, 1]
    assert correlation > 0.8


def test_equilibrium_bump_sits_under_the_sun():
    solver = ForcedShallowWaterSolver(NLAT, NLON, 600.0, truncation(NLAT), Forcing())
    for time, subsolar_longitude in (("2000-03-20T12", 0.0), ("2000-03-20T00", 180.0)):
        phi = equilibrium_geopotential(solver.lats, solver.lons, np.datetime64(time), Forcing())
        anomaly = phi - phi.mean(dim=1, keepdim=True)
        warmest = torch.rad2deg(solver.lons[anomaly[NLAT // 2].argmax()])
        assert abs(float(warmest) - subsolar_longitude) <= 360 / NLON


def test_thermal_equator_follows_the_season():
    solver = ForcedShallowWaterSolver(NLAT, NLON, 600.0, truncation(NLAT), Forcing())

    def warmest_latitude(time: str) -> float:
        phi = equilibrium_geopotential(solver.lats, solver.lons, np.datetime64(time), Forcing())
        # Weighted centre of the warm band: the zonal mean is flat near its maximum.
        zonal = phi.mean(dim=1) - phi.mean(dim=1).min()
        return float((zonal * solver.lats).sum() / zonal.sum())

    assert warmest_latitude("2000-07-01") > 0.02 > -0.02 > warmest_latitude("2000-01-01")

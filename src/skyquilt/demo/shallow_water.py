"""A forced-dissipative shallow-water atmosphere on the sphere, on torch-harmonics' solver.

Left alone, the shallow-water equations conserve energy and the flow slowly freezes into a few
large vortices. To get weather-like dynamics whose statistics stay stationary we add to the
tendencies of torch-harmonics' `ShallowWaterSolver`

    d phi / dt  += (phi_eq(lat, lon, t) - phi) / relaxation_time
    d vrt / dt  += -vrt / drag_time + stirring(t)
    d div / dt  += -div / drag_time

phi_eq has mid-latitude jets (steep meridional gradients) whose thermal equator follows the
season, plus a bump under the sun that moves with the diurnal cycle; `stirring` is a random
vorticity source at synoptic scales, red in time (AR(1)), so that eddies keep forming.
"""

import math

import numpy as np
import torch
import torch_harmonics as th
from torch import Tensor
from torch_harmonics.examples import ShallowWaterSolver
from tqdm import tqdm

from skyquilt.planning.demo_settings import Forcing

GRAVITY = 9.80616
RADIUS = 6.37122e6
SECONDS_PER_DAY = 86400.0
OBLIQUITY = math.radians(23.44)
# Day of year of the March equinox, when the solar declination crosses zero.
EQUINOX_DAY = 80.0


def solar_declination(times: np.ndarray) -> np.ndarray:
    """Declination of the sun (radians) at times (T,) datetime64 -> (T,)."""
    days = (times - times.astype("datetime64[Y]")) / np.timedelta64(1, "D")
    return OBLIQUITY * np.sin(2 * np.pi * (days - EQUINOX_DAY) / 365.25)


def equilibrium_geopotential(
    lats: Tensor, lons: Tensor, time: np.datetime64, forcing: Forcing
) -> Tensor:
    """phi_eq (m2 s-2) on the grid lats (H,), lons (W,) in radians at `time` -> (H, W).

    phi_eq = g D + A/2 [tanh((psi + l_j)/w) - tanh((psi - l_j)/w) - 1] + B cos_zenith, with
    psi = lat - shift * declination: two jets around a seasonally moving thermal equator, and
    cos_zenith = sin(lat) sin(decl) + cos(lat) cos(decl) cos(hour angle): the diurnal cycle.
    """
    time = np.datetime64(time, "ns")
    declination = float(solar_declination(np.array([time]))[0])
    utc_hours = (time - time.astype("datetime64[D]")) / np.timedelta64(1, "h")
    lat, lon = lats[:, None], lons[None, :]
    psi = lat - forcing.seasonal_shift * declination
    jet_latitude, jet_width = math.radians(forcing.jet_latitude), math.radians(forcing.jet_width)
    between_jets = torch.tanh((psi + jet_latitude) / jet_width) - torch.tanh(
        (psi - jet_latitude) / jet_width
    )
    zonal = 0.5 * forcing.jet_contrast * (between_jets - 1)
    hour_angle = lon + 2 * math.pi * (utc_hours - 12) / 24
    cos_zenith = math.sin(declination) * torch.sin(lat)
    cos_zenith = cos_zenith + math.cos(declination) * torch.cos(lat) * torch.cos(hour_angle)
    return GRAVITY * forcing.mean_depth + zonal + forcing.diurnal_amplitude * cos_zenith


class ForcedShallowWaterSolver(ShallowWaterSolver):
    """torch-harmonics' shallow-water solver plus relaxation, drag and stirring.

    The forcing fields are held fixed while `timestep` integrates one output interval; set
    them with `set_forcing` before each call.
    """

    def __init__(self, nlat: int, nlon: int, dt: float, lmax: int, forcing: Forcing):
        # Gaussian grid: exact quadrature of the quadratic terms up to degree lmax - 1.
        super().__init__(
            nlat,
            nlon,
            dt,
            lmax=lmax,
            mmax=lmax,
            grid="legendre-gauss",
            radius=RADIUS,
            gravity=GRAVITY,
            havg=forcing.mean_depth,
        )
        self.relaxation_time = forcing.relaxation_days * SECONDS_PER_DAY
        self.drag_time = forcing.drag_days * SECONDS_PER_DAY
        spectral = torch.zeros(self.lmax, self.mmax, dtype=torch.complex128)
        self.register_buffer("equilibrium", spectral.clone())
        self.register_buffer("stirring", spectral.clone())

    def set_forcing(self, equilibrium: Tensor, stirring: Tensor) -> None:
        """Spectral phi_eq and vorticity source, each (lmax, mmax) complex."""
        self.equilibrium.copy_(equilibrium)
        self.stirring.copy_(stirring)

    def dudtspec(self, uspec: Tensor) -> Tensor:
        """Tendencies of (phi, vrt, div) in spectral space: uspec (3, lmax, mmax)."""
        tendency = super().dudtspec(uspec)
        tendency[0] += (self.equilibrium - uspec[0]) / self.relaxation_time
        tendency[1:] -= uspec[1:] / self.drag_time
        tendency[1] += self.stirring
        return tendency


def truncation(nlat: int) -> int:
    """Number of spectral degrees that `nlat` Gaussian latitudes carry without aliasing.

    Products of two fields of degree L are integrated exactly when 3 L + 1 <= 2 nlat.
    """
    return (2 * nlat - 1) // 3 + 1


def steps_per_hour(lmax: int, forcing: Forcing, max_wind: float = 100.0) -> int:
    """Solver steps per hour that keep the third-order Adams-Bashforth scheme stable.

    The fastest wave at the truncation (gravity wave + wind) must stay within the scheme's
    stability region, |omega dt| < ~0.7.
    """
    fastest = (math.sqrt(GRAVITY * forcing.mean_depth) + max_wind) * lmax / RADIUS
    return math.ceil(3600.0 * fastest / 0.7)


def stirring_source(
    solver: ForcedShallowWaterSolver, forcing: Forcing, generator: torch.Generator
) -> Tensor:
    """A random vorticity source (lmax, mmax) in the stirring band, of grid rms `stirring`."""
    degrees = torch.arange(solver.lmax, dtype=torch.float64)[:, None]
    orders = torch.arange(solver.mmax, dtype=torch.float64)[None, :]
    low, high = (fraction * solver.lmax for fraction in forcing.stirring_wavenumbers)
    band = (degrees >= low) & (degrees <= high) & (orders <= degrees)
    noise = torch.randn(solver.lmax, solver.mmax, generator=generator, dtype=torch.complex128)
    noise = noise * band
    mean_square = solver.integrate_grid(solver.spec2grid(noise) ** 2, dimensionless=True)
    return noise * forcing.stirring / torch.sqrt(mean_square / (4 * math.pi))


def simulate(
    nlat: int,
    nlon: int,
    times: np.ndarray,
    spinup_hours: int,
    forcing: Forcing,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """Hourly states at `times` (T,) consecutive hours -> (T, 3, nlat, nlon) float32.

    Variables are (geopotential, u, v) on the equiangular grid with poles (latitude 90 -> -90,
    longitude 0 -> 360 exclusive). The solver runs on a Gaussian grid of the same size and the
    spectral state is evaluated on the output grid, so no interpolation is involved. The run
    starts from phi_eq at rest `spinup_hours` before times[0]; the spin-up is discarded.
    """
    lmax = truncation(nlat)
    steps = steps_per_hour(lmax, forcing)
    solver = ForcedShallowWaterSolver(nlat, nlon, 3600.0 / steps, lmax, forcing)
    to_grid = th.InverseRealSHT(nlat, nlon, lmax, lmax, grid="equiangular", csphase=False)
    to_wind = th.InverseRealVectorSHT(nlat, nlon, lmax, lmax, grid="equiangular", csphase=False)
    to_grid, to_wind = to_grid.double(), to_wind.double()
    generator = torch.Generator().manual_seed(seed)
    memory = math.exp(-1.0 / (24.0 * forcing.stirring_days))
    hour = np.timedelta64(1, "h")
    first = np.datetime64(times[0], "ns") - spinup_hours * hour

    def equilibrium(time: np.datetime64) -> Tensor:
        return solver.grid2spec(equilibrium_geopotential(solver.lats, solver.lons, time, forcing))

    def on_output_grid(uspec: Tensor) -> np.ndarray:
        """Spectral (phi, vrt, div) (3, lmax, lmax) -> grid (phi, u, v) (3, nlat, nlon).

        The winds as in `ShallowWaterSolver.getuv`, with the output grid's transform.
        """
        wind = to_wind(solver.invlap * uspec[1:] / solver.radius)
        return torch.cat([to_grid(uspec[:1]), wind]).numpy()

    uspec = torch.zeros(3, lmax, lmax, dtype=torch.complex128)
    uspec[0] = equilibrium(first)
    stirring = stirring_source(solver, forcing, generator)
    states = np.empty((len(times), 3, nlat, nlon), dtype=np.float32)
    total = spinup_hours + len(times)
    with torch.no_grad():
        for index in tqdm(range(total), desc="shallow water", unit="h", disable=not progress):
            if index >= spinup_hours:
                states[index - spinup_hours] = on_output_grid(uspec)
            if index + 1 < total:
                # Forcing held at its value half-way through the hour. `timestep` restarts
                # its Adams-Bashforth history (with one Euler step) at every call;
                # `steps_per_hour` leaves the margin that needs.
                solver.set_forcing(equilibrium(first + index * hour + hour // 2), stirring)
                uspec = solver.timestep(uspec, steps)
                fresh = stirring_source(solver, forcing, generator)
                stirring = memory * stirring + math.sqrt(1 - memory**2) * fresh
    return states

"""The demo dataset: hourly forced shallow-water "weather" stored as an ERA5-like zarr.

Layout (WeatherBench2, docs/architecture.md): coordinates `time` (hourly datetime64[ns]), `level`
([500] hPa), `latitude` (90 -> -90, poles included), `longitude` (0 -> 360, exclusive);
variables `geopotential`, `u_component_of_wind`, `v_component_of_wind` with dims
(time, level, latitude, longitude), float32, ERA5 units and long names as attributes.

Normalisation statistics sit beside the store, `<name>.zarr` -> `<name>.stats.json`
(`skyquilt.planning.demo_settings.stats_path`): per-variable mean and std over the training period,
i.e. every time outside the held-out period, which is kept for evaluation only.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from skyquilt.io.atomic import write_json
from skyquilt.io.shards import ZARR_FORMAT, atomic_directory
from skyquilt.planning.demo_settings import DatasetSettings, held_out_mask, stats_path

VARIABLES: dict[str, dict[str, str]] = {
    "geopotential": {"units": "m**2 s**-2", "long_name": "Geopotential"},
    "u_component_of_wind": {"units": "m s**-1", "long_name": "U component of wind"},
    "v_component_of_wind": {"units": "m s**-1", "long_name": "V component of wind"},
}
LEVEL_HPA = 500
# One week of hourly states per chunk: ~0.3 MB per variable on the default grid.
TIME_CHUNK = 168


def latitudes(nlat: int) -> np.ndarray:
    """Equiangular latitudes with poles, 90 -> -90 (degrees north): (nlat,)."""
    return np.linspace(90.0, -90.0, nlat)


def longitudes(nlon: int) -> np.ndarray:
    """Equiangular longitudes 0 -> 360 exclusive (degrees east): (nlon,)."""
    return np.arange(nlon) * 360.0 / nlon


def area_weights(latitudes: np.ndarray) -> Tensor:
    """Cell areas of an equiangular grid with poles, latitudes (H,) degrees -> (H,), mean 1.

    A cell spans half a grid spacing either side of its latitude, clipped at the poles.
    """
    latitudes = np.deg2rad(np.asarray(latitudes, dtype=np.float64))
    half = np.abs(latitudes[1] - latitudes[0]) / 2
    upper = np.minimum(latitudes + half, np.pi / 2)
    lower = np.maximum(latitudes - half, -np.pi / 2)
    weights = np.sin(upper) - np.sin(lower)
    return torch.from_numpy(weights / weights.mean()).float()


def simulate_dataset(settings: DatasetSettings, progress: bool = False) -> xr.Dataset:
    """Run the forced shallow-water model and wrap its hourly states as an ERA5-like dataset."""
    # Imported here: the workflow imports this module at parse time (for `stats_path`), and
    # torch-harmonics alone would double the time `snakemake -n` takes.
    from skyquilt.demo.shallow_water import simulate

    nlat, nlon = settings.grid
    times = settings.times()
    states = simulate(
        nlat, nlon, times, 24 * settings.spinup_days, settings.forcing, settings.seed, progress
    )
    coords = {
        "time": ("time", times),
        "level": ("level", np.array([LEVEL_HPA], dtype=np.int64), {"units": "hPa"}),
        "latitude": ("latitude", latitudes(nlat), {"units": "degrees_north"}),
        "longitude": ("longitude", longitudes(nlon), {"units": "degrees_east"}),
    }
    dims = ("time", "level", "latitude", "longitude")
    data_vars = {
        name: (dims, states[:, index, None], attributes)
        for index, (name, attributes) in enumerate(VARIABLES.items())
    }
    attributes = {
        "title": "skyquilt demo: forced shallow-water atmosphere (torch-harmonics solver)",
        "held_out_start": settings.held_out[0],
        "held_out_end": settings.held_out[1],
        "settings": json.dumps(dataclasses.asdict(settings)),
    }
    return xr.Dataset(data_vars, coords, attributes)


def normalisation_stats(
    dataset: xr.Dataset, held_out: tuple[str, str]
) -> dict[str, dict[str, float]]:
    """Per-variable mean and std over all times outside `held_out`: {name: {mean, std}}."""
    training = dataset.isel(time=~held_out_mask(dataset.time.values, held_out))
    return {
        name: {
            "mean": float(training[name].astype("float64").mean()),
            "std": float(training[name].astype("float64").std()),
        }
        for name in dataset.data_vars
    }


def read_stats(dataset_path: Path | str) -> dict[str, dict[str, float]]:
    """{variable: {"mean": float, "std": float}} of the dataset at `dataset_path`."""
    return json.loads(stats_path(dataset_path).read_text())["variables"]


def write_dataset(dataset: xr.Dataset, path: Path | str, held_out: tuple[str, str]) -> None:
    """Write the zarr store and its statistics file, each atomically."""
    path = Path(path)
    encoding = {
        name: {"chunks": (TIME_CHUNK, 1, dataset.sizes["latitude"], dataset.sizes["longitude"])}
        for name in dataset.data_vars
    }
    with atomic_directory(path) as temporary:
        dataset.to_zarr(
            temporary, mode="w-", encoding=encoding, consolidated=True, zarr_format=ZARR_FORMAT
        )
    stats = {
        "description": "mean and std of each variable over all times outside the held-out period",
        "held_out": list(held_out),
        "variables": normalisation_stats(dataset, held_out),
    }
    write_json(stats, stats_path(path))


def stack_states(dataset: xr.Dataset, variables: list[str]) -> np.ndarray:
    """The dataset's states as one array (T, V, H, W) float32 (the single level squeezed)."""
    arrays = [dataset[name].squeeze("level", drop=True).values for name in variables]
    return np.stack(arrays, axis=1).astype(np.float32)

"""Tiny decodable worlds for the decode, render and evaluate tests: a synthetic dataset in the
demo's WeatherBench2 layout and a random-weight demo autoencoder in a model's latent_dir."""

from pathlib import Path

import numpy as np
import safetensors.torch
import torch
import xarray as xr

from skyquilt.demo.dataset import LEVEL_HPA, VARIABLES, latitudes, longitudes, write_dataset
from skyquilt.models.autoencoder import Autoencoder, save_autoencoder
from skyquilt.models.config import ModelDirectory

# Physical scales of the synthetic fields: geopotential around 5.5e4 m2 s-2, winds ~10 m/s.
OFFSETS = {"geopotential": 5.5e4, "u_component_of_wind": 5.0, "v_component_of_wind": 0.0}
AMPLITUDES = {"geopotential": 800.0, "u_component_of_wind": 10.0, "v_component_of_wind": 8.0}


def synthetic_dataset(start: str, hours: int, grid: tuple[int, int], seed: int = 0) -> xr.Dataset:
    """Hourly travelling waves with a diurnal cycle and noise, in the demo dataset's layout:
    variables (time, level [500], latitude, longitude) with ERA5 units."""
    nlat, nlon = grid
    times = np.datetime64(start, "ns") + np.arange(hours) * np.timedelta64(1, "h")
    lat, lon = np.deg2rad(latitudes(nlat)), np.deg2rad(longitudes(nlon))
    hour = np.arange(hours)[:, None, None]
    rng = np.random.default_rng(seed)
    data_vars = {}
    for index, (name, attrs) in enumerate(VARIABLES.items()):
        wave = np.cos(3 * lon[None, None, :] - 0.05 * hour + index) * np.cos(lat)[None, :, None]
        diurnal = 0.3 * np.sin(2 * np.pi * hour / 24 + lon[None, None, :])
        noise = 0.05 * rng.standard_normal((hours, nlat, nlon))
        field = OFFSETS[name] + AMPLITUDES[name] * (wave + diurnal + noise)
        data_vars[name] = (
            ("time", "level", "latitude", "longitude"),
            field[:, None].astype(np.float32),
            attrs,
        )
    coords = {
        "time": times,
        "level": ("level", np.array([LEVEL_HPA]), {"units": "hPa"}),
        "latitude": ("latitude", latitudes(nlat), {"units": "degrees_north"}),
        "longitude": ("longitude", longitudes(nlon), {"units": "degrees_east"}),
    }
    return xr.Dataset(data_vars, coords)


def write_synthetic_dataset(
    path: Path, start: str = "2000-03-25", hours: int = 24 * 40, grid: tuple[int, int] = (16, 32)
) -> Path:
    """The synthetic dataset as a zarr plus its statistics file; held out: April 2000."""
    write_dataset(synthetic_dataset(start, hours, grid), path, ("2000-04-01", "2000-04-30"))
    return path


def random_autoencoder(
    dataset: xr.Dataset, latent_channels: int = 2, downsamplings: int = 2, seed: int = 0
) -> Autoencoder:
    """A demo autoencoder with random weights, normalised with the dataset's statistics."""
    torch.manual_seed(seed)
    variables = list(VARIABLES)
    return Autoencoder(
        variables,
        (dataset.sizes["latitude"], dataset.sizes["longitude"]),
        latent_channels=latent_channels,
        width=8,
        downsamplings=downsamplings,
        mean=[float(dataset[name].mean()) for name in variables],
        std=[float(dataset[name].std()) for name in variables],
    ).eval()


def install_autoencoder(
    model_path: Path, autoencoder: Autoencoder, mean: torch.Tensor, std: torch.Tensor
) -> None:
    """Put the autoencoder in latent_dir/ae and the latent statistics beside it."""
    directory = ModelDirectory(Path(model_path))
    save_autoencoder(autoencoder, directory.autoencoder_dir)
    safetensors.torch.save_file(
        {"mean": mean.contiguous(), "std": std.contiguous()}, directory.stats_file
    )


def write_decoded_members(
    directory: Path,
    count: int,
    states: int = 6,
    grid: tuple[int, int] = (8, 16),
    start: str = "2000-04-03T00",
    states_per_chunk: int = 4,
    seed: int = 0,
) -> list[Path]:
    """`count` decoded members of one start date in the decode job's layout (made by
    skyquilt.io.forecasts.decoded_template from a synthetic dataset): the synthetic dataset's
    states from `start`, plus member noise of each variable's amplitude. Returns their paths
    (directory / "<member>.zarr"), writing only those that do not exist yet."""
    import zarr

    from skyquilt.io.forecasts import decoded_template
    from skyquilt.io.shards import ZARR_FORMAT

    dataset = synthetic_dataset(start, states, grid, seed)
    channels = [(name, float(LEVEL_HPA)) for name in VARIABLES]
    paths = []
    for member in range(count):
        path = Path(directory) / f"{member}.zarr"
        paths.append(path)
        if path.exists():
            continue
        shard = xr.Dataset(
            coords={"time": dataset.time.values},
            attrs={"start_date": start, "member": member, "trajectory_size": states},
        )
        template = decoded_template(shard, dataset, channels, states_per_chunk)
        template.to_zarr(path, mode="w-", compute=False, consolidated=True, zarr_format=ZARR_FORMAT)
        store = zarr.open_group(path, mode="r+", zarr_format=ZARR_FORMAT)
        rng = np.random.default_rng([seed, member])
        for name in VARIABLES:
            truth = dataset[name].values  # (T, 1, H, W)
            noise = AMPLITUDES[name] * rng.standard_normal(truth.shape)
            store[name][0, 0] = (truth + noise).astype(np.float32)
    return paths

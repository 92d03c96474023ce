"""Decoding of generated latent trajectories into physical fields (WeatherBench2 layout).

A shard holds standardised latents z_std (T, C, h, w) (DESIGN.md §3). Decoding undoes the
latent standardisation with the statistics of latent_dir, z = z_std * std + mean, runs the
decoder of the autoencoder in latent_dir/ae with each state's calendar features, and returns
fields in physical units. The output is one zarr per member with dims (time [init, 1], member
[1], prediction_timedelta [T], [level,] latitude, longitude); it is created empty first and
filled a block of `states_per_chunk` states at a time, so peak memory is that of one block
whatever T is. The dataset supplies the grid coordinates, levels, units and long names.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dask.array
import numpy as np
import safetensors.torch
import torch
import xarray as xr
import zarr
from torch import Tensor

from skyquilt import __version__
from skyquilt.demo import autoencoder as demo_autoencoder
from skyquilt.models.config import ModelDirectory
from skyquilt.products import decoder_files
from skyquilt.stores import LATENT, SHARD_DIMS, ZARR_FORMAT, ShardError, atomic_directory
from skyquilt.timestamps import time_features

FORECAST_DIMS = ("time", "member", "prediction_timedelta")
SPATIAL_DIMS = ("latitude", "longitude")
STATES_PER_CHUNK = 8
# Dataset attributes that describe a variable and carry over to its decoded field.
FIELD_ATTRS = ("units", "long_name", "standard_name")


@dataclass(frozen=True)
class Decoder:
    """An autoencoder's decoder, in physical units.

    variables, levels: the dataset variable and level of each output channel, (V,) each; a
    level of None means the variable has no level axis or the dataset holds one level only.
    decode: latent (B, C, h, w), time_features (B, 4) -> fields (B, V, H, W), physical units.
    """

    variables: tuple[str, ...]
    levels: tuple[float | None, ...]
    decode: Callable[[Tensor, Tensor], Tensor]


def load_decoder(autoencoder_dir: Path | str, device: torch.device | str = "cpu") -> Decoder:
    """The decoder of the autoencoder stored in `autoencoder_dir`.

    The demo autoencoder (skyquilt.demo.autoencoder) is the only architecture so far: it
    decodes one channel per variable, at the dataset's only level. Another architecture
    plugs in here (with its files in `products.decoder_files`) by returning a Decoder.
    """
    model = demo_autoencoder.load_autoencoder(autoencoder_dir).to(device)

    @torch.no_grad()
    def decode(latent: Tensor, features: Tensor) -> Tensor:
        return model.denormalise(model.decode(latent, features))

    return Decoder(tuple(model.variables), (None,) * len(model.variables), decode)


def load_latent_stats(stats_file: Path | str) -> tuple[Tensor, Tensor]:
    """Latent mean and std, (C, h, w) each, from latent_dir/stats.safetensors."""
    tensors = safetensors.torch.load_file(stats_file)
    return tensors["mean"].float(), tensors["std"].float()


Channel = tuple[str, float | None]


def resolve_channels(decoder: Decoder, dataset: xr.Dataset) -> list[Channel]:
    """(variable, level) of each decoder output channel as the dataset has it: level None when
    the variable has no level axis, the dataset's level when it has exactly one."""
    channels = []
    for variable, level in zip(decoder.variables, decoder.levels, strict=True):
        if variable not in dataset:
            raise KeyError(
                f"the decoder outputs {variable!r}, which the dataset lacks "
                f"(it has {', '.join(map(str, dataset.data_vars))})"
            )
        if "level" in dataset[variable].dims:
            if level is None and dataset.sizes["level"] != 1:
                raise ValueError(
                    f"the decoder outputs {variable!r} without a level, but the dataset has "
                    f"levels {dataset.level.values.tolist()}; list the decoder's levels"
                )
            level = dataset.level.values[0].item() if level is None else level
        elif level is not None:
            raise ValueError(f"the decoder outputs {variable!r} at level {level}, the dataset none")
        channels.append((variable, level))
    return channels


def decoded_template(
    shard: xr.Dataset, dataset: xr.Dataset, channels: list[Channel], states_per_chunk: int
) -> xr.Dataset:
    """The decoded dataset of one shard as lazy NaNs: coordinates, attributes and chunks.

    A variable has a level axis when its channels have levels; as in WeatherBench2, all such
    variables share one level axis, so they must be decoded at the same levels.
    """
    times = shard["time"].values
    levels = sorted({level for _, level in channels} - {None})
    for variable in dict.fromkeys(name for name, _ in channels):
        own = sorted(level for name, level in channels if name == variable)
        if None not in own and own != levels:
            raise ValueError(
                f"the decoder outputs {variable} at levels {own}, other variables at {levels}; "
                "variables with levels must share them"
            )
    coords = {
        "time": ("time", times[:1], {"long_name": "initialisation time"}),
        "member": ("member", np.array([shard.attrs.get("member", 0)], dtype=np.int64)),
        "prediction_timedelta": ("prediction_timedelta", times - times[0]),
    }
    # Values and attributes only: the dataset's encoding belongs to its own store format.
    coords |= {dim: (dim, dataset[dim].values, dataset[dim].attrs) for dim in SPATIAL_DIMS}
    if levels:
        values = np.array(levels, dtype=dataset["level"].dtype)
        coords["level"] = ("level", values, dataset["level"].attrs)
    sizes = {"time": 1, "member": 1, "prediction_timedelta": len(times), "level": len(levels)}
    sizes |= {dim: dataset.sizes[dim] for dim in SPATIAL_DIMS}
    data_vars = {}
    for variable in dict.fromkeys(variable for variable, _ in channels):
        has_level = any(level is not None for name, level in channels if name == variable)
        dims = (*FORECAST_DIMS, *(("level",) if has_level else ()), *SPATIAL_DIMS)
        shape = tuple(sizes[dim] for dim in dims)
        chunks = tuple(
            min(states_per_chunk, sizes[dim]) if dim == "prediction_timedelta" else sizes[dim]
            for dim in dims
        )
        source = dataset[variable].attrs
        attrs = {key: source[key] for key in FIELD_ATTRS if key in source}
        fill = dask.array.full(shape, np.nan, dtype=np.float32, chunks=chunks)
        data_vars[variable] = (dims, fill, attrs)
    attrs = {key: value for key, value in shard.attrs.items() if key != "checksum"}
    attrs |= {"skyquilt_version": __version__}
    return xr.Dataset(data_vars, coords, attrs)


def _variable_blocks(
    fields: np.ndarray, channels: list[Channel], template: xr.Dataset
) -> dict[str, np.ndarray]:
    """Decoded channels (B, V, H, W) -> each variable's data for those B states, laid out as
    in the template: (B, [L,] H, W), without the time and member axes (size 1)."""
    blocks = {}
    for variable in template.data_vars:
        indices = [index for index, (name, _) in enumerate(channels) if name == variable]
        if "level" not in template[variable].dims:
            blocks[variable] = fields[:, indices[0]]
            continue
        # Channels may list the levels in any order; the level axis is sorted.
        order = np.argsort([channels[index][1] for index in indices])
        blocks[variable] = fields[:, np.asarray(indices)[order]]
    return blocks


def decode_member(
    shard_path: Path | str,
    model_path: Path | str,
    dataset_path: Path | str,
    output_path: Path | str,
    states_per_chunk: int = STATES_PER_CHUNK,
    device: torch.device | str = "cpu",
) -> None:
    """Decode one member's shard into a WeatherBench2-style zarr at `output_path`.

    model_path: the denoiser directory; its latent_dir provides stats.safetensors and ae/.
    dataset_path: the ERA5-like zarr whose grid, levels and units the fields take.
    The output is written atomically; the shard's checksum is verified on the way, block by
    block, and a mismatch fails the decoding (naming the shard) without leaving an output.
    """
    for description, path in decoder_files(model_path).items():
        if not path.is_file():
            raise FileNotFoundError(
                f"{description} file {path} is missing; decoding needs the autoencoder "
                "in <latent_dir>/ae and the latent statistics beside it"
            )
    directory = ModelDirectory(Path(model_path))
    mean, std = load_latent_stats(directory.stats_file)
    decoder = load_decoder(directory.autoencoder_dir, device)
    shard = xr.open_zarr(shard_path, consolidated=True)
    if LATENT not in shard or shard[LATENT].dims != SHARD_DIMS:
        raise ShardError(f"shard {shard_path} has no '{LATENT}' variable with dims {SHARD_DIMS}")
    latent_shape = tuple(shard.sizes[dim] for dim in SHARD_DIMS[1:])
    if latent_shape != tuple(mean.shape):
        raise ShardError(
            f"shard {shard_path} has latent shape {latent_shape}, but the statistics "
            f"{directory.stats_file} have shape {tuple(mean.shape)}"
        )
    dataset = xr.open_zarr(dataset_path)
    channels = resolve_channels(decoder, dataset)
    template = decoded_template(shard, dataset, channels, states_per_chunk)
    times = shard["time"].values
    digest = hashlib.sha256()
    with atomic_directory(Path(output_path)) as temporary:
        template.to_zarr(
            temporary, mode="w-", compute=False, consolidated=True, zarr_format=ZARR_FORMAT
        )
        # Blocks go straight to the zarr arrays: xarray's region writes would reopen the store
        # and check its metadata for every block.
        store = zarr.open_group(temporary, mode="r+", zarr_format=ZARR_FORMAT)
        for start in range(0, len(times), states_per_chunk):
            block = slice(start, start + states_per_chunk)
            standardised = shard[LATENT].isel(time=block).values.astype(np.float32)
            digest.update(np.ascontiguousarray(standardised).tobytes())
            latent = torch.from_numpy(standardised) * std + mean
            fields = decoder.decode(latent.to(device), time_features(times[block]).to(device))
            blocks = _variable_blocks(fields.float().cpu().numpy(), channels, template)
            for variable, values in blocks.items():
                store[variable][0, 0, block] = values
        if "checksum" in shard.attrs and digest.hexdigest() != shard.attrs["checksum"]:
            raise ShardError(
                f"shard {shard_path}: its latents do not match their checksum "
                "(missing or damaged chunk); regenerate it"
            )

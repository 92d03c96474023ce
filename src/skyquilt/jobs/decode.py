"""The decode job: one member's latent shard into physical fields (WeatherBench2 layout).

The latents are de-standardised and decoded `states_per_chunk` states at a time, each block
written straight into the member's zarr, so peak memory is that of one block whatever T is.
The shard's checksum is verified on the way, block by block. The decoded member carries the
checksum of each variable's values (skyquilt.io.forecasts) and records what it was made from
(attribute `inputs`, skyquilt.io.fingerprints): the shard's denoiser, the decoder (autoencoder
config and weights, latent statistics) and the dataset's grid.
"""

import hashlib
from pathlib import Path

import numpy as np
import torch
import xarray as xr
import zarr

from skyquilt.io.atomic import atomic_directory
from skyquilt.io.fingerprints import INPUTS, dataset_record, files_record
from skyquilt.io.forecasts import (
    CHECKSUMS,
    Channel,
    decoded_template,
    resolve_channels,
    variable_blocks,
)
from skyquilt.io.shards import LATENT, ZARR_FORMAT, ShardError, check_checksum, open_shard
from skyquilt.models.calendar import time_features
from skyquilt.models.config import ModelDirectory
from skyquilt.models.decoder import Decoder, load_decoder, load_latent_stats

STATES_PER_CHUNK = 8


def decode_states(
    standardised: np.ndarray,
    times: np.ndarray,
    decoder: Decoder,
    stats: tuple[torch.Tensor, torch.Tensor],
) -> np.ndarray:
    """Standardised latents (B, C, h, w) at times (B,) -> physical fields (B, V, H, W) float32.

    stats: the latent mean and std (C, h, w), on the decoder's device.
    """
    mean, std = stats
    latent = torch.from_numpy(np.asarray(standardised, np.float32)).to(mean.device) * std + mean
    fields = decoder.decode(latent, time_features(times).to(mean.device))
    return fields.float().cpu().numpy()


def open_decoding(
    model_path: Path | str, dataset: xr.Dataset, device: torch.device | str
) -> tuple[Decoder, tuple[torch.Tensor, torch.Tensor], list[Channel]]:
    """The decoder of the model at `model_path`, its latent (mean, std) on `device`, and the
    dataset's (variable, level) of each decoded channel."""
    directory = ModelDirectory(Path(model_path))
    directory.check_decoder_files()
    mean, std = load_latent_stats(directory.stats_file)
    decoder = load_decoder(directory.autoencoder_dir, device)
    channels = resolve_channels(decoder.variables, decoder.levels, dataset)
    return decoder, (mean.to(device), std.to(device)), channels


def _decode_blocks(
    shard_path: Path | str,
    shard: xr.Dataset,
    decoder: Decoder,
    stats: tuple[torch.Tensor, torch.Tensor],
    store: zarr.Group,
    template: xr.Dataset,
    channels: list,
    states_per_chunk: int,
) -> tuple[str, dict[str, str]]:
    """Decode the shard into `store` block by block; returns the sha256 of the latents read
    and of each variable's values written."""
    times = shard["time"].values
    digest = hashlib.sha256()
    written = {variable: hashlib.sha256() for variable in template.data_vars}
    for start in range(0, len(times), states_per_chunk):
        block = slice(start, start + states_per_chunk)
        try:
            standardised = shard[LATENT].isel(time=block).values.astype(np.float32)
        except Exception as error:  # zarr raises many types for missing or damaged chunks
            raise ShardError(
                f"shard {shard_path} has an unreadable chunk ({error}); regenerate it (delete "
                f"it, or run snakemake --forcerun {shard_path})"
            ) from error
        digest.update(np.ascontiguousarray(standardised).tobytes())
        fields = decode_states(standardised, times[block], decoder, stats)
        blocks = variable_blocks(fields, channels, template)
        for variable, values in blocks.items():
            store[variable][0, 0, block] = values
            written[variable].update(np.ascontiguousarray(values, dtype=np.float32))
    return digest.hexdigest(), {str(name): value.hexdigest() for name, value in written.items()}


def decode_member(
    shard_path: Path | str,
    model_path: Path | str,
    dataset_path: Path | str,
    output_path: Path | str,
    states_per_chunk: int = STATES_PER_CHUNK,
    device: torch.device | str = "cpu",
) -> None:
    """Decode one member's shard into a WeatherBench2-style zarr at `output_path`, atomically.

    Arguments:
        shard_path: the member's latent shard.
        model_path: the denoiser directory; its latent_dir provides stats.safetensors and ae/.
        dataset_path: the ERA5-like zarr whose grid, levels and units the fields take.
        output_path: the decoded member; nothing is left there if decoding fails (a shard
            whose latents do not match their checksum fails it, naming the shard).
    """
    dataset = xr.open_zarr(dataset_path)
    decoder, stats, channels = open_decoding(model_path, dataset, device)
    shard = open_shard(shard_path)
    if tuple(shard[LATENT].shape[1:]) != tuple(stats[0].shape):
        raise ShardError(
            f"shard {shard_path} has latent shape {tuple(shard[LATENT].shape[1:])}, but the "
            f"statistics {ModelDirectory(Path(model_path)).stats_file} have shape "
            f"{tuple(stats[0].shape)}"
        )
    template = decoded_template(shard, dataset, channels, states_per_chunk)
    decoder_files = ModelDirectory(Path(model_path)).decoder_files().values()
    template.attrs[INPUTS] = {
        **shard.attrs.get(INPUTS, {}),
        "decoder": files_record(decoder_files),
        "dataset": dataset_record(dataset_path, dataset, decoder.variables, "grid"),
    }
    with atomic_directory(Path(output_path)) as temporary:
        template.to_zarr(
            temporary, mode="w-", compute=False, consolidated=True, zarr_format=ZARR_FORMAT
        )
        # Blocks go straight to the zarr arrays: xarray's region writes would reopen the store
        # and check its metadata for every block.
        store = zarr.open_group(temporary, mode="r+", zarr_format=ZARR_FORMAT)
        digest, checksums = _decode_blocks(
            shard_path, shard, decoder, stats, store, template, channels, states_per_chunk
        )
        check_checksum(shard_path, shard, digest)
        store.attrs[CHECKSUMS] = checksums
        zarr.consolidate_metadata(temporary, zarr_format=ZARR_FORMAT)

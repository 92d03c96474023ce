"""The latent dump of a dataset and the latent statistics (latent_dir, see docs/architecture.md).

    latent_dir/latents.zarr        variable "latent" (time, channel, y, x): raw latents
    latent_dir/stats.safetensors   "mean", "std", each (C, h, w), over the training period
    latent_dir/ae/                 config.yaml + weights.safetensors of the autoencoder used

The diffusion model works on standardised latents (z - mean) / std.
"""

from pathlib import Path

import numpy as np
import torch
import xarray as xr
from torch import Tensor
from tqdm import tqdm

from skyquilt.demo.dataset import stack_states
from skyquilt.io.atomic import copy_file
from skyquilt.io.shards import LATENT, SHARD_DIMS, ZARR_FORMAT, atomic_directory
from skyquilt.models.autoencoder import CONFIG_FILE, WEIGHTS_FILE, Autoencoder, load_autoencoder
from skyquilt.models.weights import save_tensors
from skyquilt.planning.demo_settings import held_out_mask

LATENTS_FILE = "latents.zarr"
STATS_FILE = "stats.safetensors"
AUTOENCODER_DIR = "ae"
# Standard deviations below this fraction of the mean std are raised to it, so that a latent
# element the encoder never uses cannot blow up standardised latents.
STD_FLOOR = 1e-3


@torch.no_grad()
def encode_states(
    model: Autoencoder, states: Tensor, batch_size: int = 512, progress: bool = False
) -> Tensor:
    """Normalised states (N, V, H, W) -> latents (N, C, h, w), in batches."""
    batches = range(0, len(states), batch_size)
    return torch.cat(
        [
            model.encode(states[start : start + batch_size])
            for start in tqdm(batches, desc="encode", unit="batch", disable=not progress)
        ]
    )


def latent_statistics(latents: Tensor, training: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and std (C, h, w) of latents (N, C, h, w) over the states where training (N,)."""
    selected = latents[training].double()
    mean, std = selected.mean(dim=0), selected.std(dim=0)
    std = std.clamp(min=STD_FLOOR * float(std.mean()))
    return mean.float(), std.float()


def dump_latents(
    dataset_path: Path | str,
    autoencoder_dir: Path | str,
    latent_dir: Path | str,
    held_out: tuple[str, str],
    progress: bool = False,
) -> tuple[Tensor, Tensor]:
    """Encode every state of the dataset and write latent_dir; returns (mean, std)."""
    latent_dir = Path(latent_dir)
    model = load_autoencoder(autoencoder_dir)
    dataset = xr.open_zarr(dataset_path).load()
    times = dataset.time.values
    states = model.normalise(torch.from_numpy(stack_states(dataset, model.variables)))
    latents = encode_states(model, states, progress=progress)
    training = torch.from_numpy(~held_out_mask(times, held_out))
    mean, std = latent_statistics(latents, training)

    dump = xr.Dataset(
        {LATENT: (SHARD_DIMS, latents.numpy().astype(np.float32))},
        coords={"time": times},
        attrs={
            "dataset": str(dataset_path),
            "autoencoder": str(autoencoder_dir),
            "held_out": list(held_out),
            "description": "raw latents of every dataset state; standardise with stats.safetensors",
        },
    )
    encoding = {LATENT: {"chunks": (168, *latents.shape[1:])}}
    with atomic_directory(latent_dir / LATENTS_FILE) as temporary:
        dump.to_zarr(
            temporary, mode="w-", encoding=encoding, consolidated=True, zarr_format=ZARR_FORMAT
        )
    save_tensors({"mean": mean, "std": std}, latent_dir / STATS_FILE)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        copy_file(Path(autoencoder_dir) / name, latent_dir / AUTOENCODER_DIR / name)
    return mean, std

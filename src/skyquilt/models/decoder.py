"""Decoders: latents of an autoencoder back to physical fields, and the latent statistics.

A shard holds standardised latents z_std; decoding undoes the standardisation with the
statistics of latent_dir, z = z_std * std + mean, and runs the autoencoder's decoder with each
state's calendar features.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch
from torch import Tensor

from skyquilt.models.autoencoder import load_autoencoder


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

    The built-in autoencoder (skyquilt.models.autoencoder) is the only architecture so far: it
    decodes one channel per variable, at the dataset's only level. Another architecture
    plugs in here (with its files in `ModelDirectory.decoder_files`) by returning a Decoder.

    Arguments:
        autoencoder_dir: the autoencoder's directory, <latent_dir>/ae.
        device: where to decode.

    Returns:
        The decoder: latent (B, C, h, w), time_features (B, 4) -> fields (B, V, H, W) in
        physical units.
    """
    model = load_autoencoder(autoencoder_dir).to(device)

    @torch.no_grad()
    def decode(latent: Tensor, features: Tensor) -> Tensor:
        return model.denormalise(model.decode(latent, features))

    return Decoder(tuple(model.variables), (None,) * len(model.variables), decode)


def load_latent_stats(stats_file: Path | str) -> tuple[Tensor, Tensor]:
    """Latent mean and std, (C, h, w) each, from latent_dir/stats.safetensors."""
    tensors = safetensors.torch.load_file(stats_file)
    return tensors["mean"].float(), tensors["std"].float()

"""Model directories with random weights, for tests and benchmarks."""

from pathlib import Path

import torch
from torch import nn

from skyquilt.models.config import parse_model_config
from skyquilt.models.weights import build_denoiser, write_model_directory


def random_model_config(
    latent_shape: tuple[int, int, int] = (2, 4, 8),
    blanket_size: int = 8,
    denoising_steps: int = 8,
    hidden_channels: int = 8,
    blocks: int = 1,
) -> dict:
    """A complete denoiser config for a tiny built-in backbone."""
    return {
        "latent_shape": list(latent_shape),
        "backbone": {
            "name": "blanket_net",
            "kwargs": {"hidden_channels": hidden_channels, "blocks": blocks, "embedding": 16},
        },
        "train": {
            "blanket_size": blanket_size,
            "blanket_dt": 1,
            "noise_schedule": "rectified",
            "sigma_min": 1e-3,
            "sigma_max": 1e3,
            "precision": "float32",
        },
        "valid": {"denoising_steps": denoising_steps},
    }


def random_denoiser(config: dict, seed: int) -> nn.Module:
    """A denoiser of `config` with random, non-zero weights (not an identity map)."""
    torch.manual_seed(seed)
    denoiser = build_denoiser(parse_model_config(config))
    for parameter in denoiser.parameters():
        nn.init.normal_(parameter, std=0.1)
    return denoiser


def write_random_model(
    root: Path,
    seed: int = 0,
    coarse_block: int | None = None,
    coarse_blanket_size: int = 4,
    **config_overrides,
) -> Path:
    """A complete model directory under `root` with random weights, for tests.

    With `coarse_block`, the model declares a coarse model of block means of that many
    states (two-scale composition) in its directory `coarse/`: windows of 2 to
    `coarse_blanket_size` blocks.

    Returns model_path = root/autoencoders/ae/0/latents/dump/denoisers/denoiser/0.
    """
    config = random_model_config(**config_overrides)
    model_path = Path(root) / "autoencoders/ae/0/latents/dump/denoisers/denoiser/0"
    if coarse_block is not None:
        config["coarse"] = {"path": "coarse", "block": coarse_block}
        coarse = random_model_config(**{**config_overrides, "blanket_size": coarse_blanket_size})
        coarse["train"] |= {"blanket_dt": coarse_block, "min_blanket_size": 2}
        write_model_directory(model_path / "coarse", coarse, random_denoiser(coarse, seed + 1))
    shape = tuple(config["latent_shape"])
    return write_model_directory(
        model_path,
        config,
        random_denoiser(config, seed),
        latent_mean=torch.zeros(shape),
        latent_std=torch.ones(shape),
    )


def state_shapes(module: torch.nn.Module) -> dict:
    """Name -> shape of every tensor of a module's state dict."""
    return {name: tuple(value.shape) for name, value in module.state_dict().items()}

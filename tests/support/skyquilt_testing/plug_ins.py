"""A user's own backbone, as small as can be: not a BlanketNet, only what
skyquilt.models.registry.Backbone asks for. A model's config.yaml names it by import path,

    backbone:
      name: skyquilt_testing.plug_ins:per_state_mixer
      kwargs: {width: 4}

and a run's config consents to importing it (trust_model_code lists skyquilt_testing).
"""

from pathlib import Path

import torch
from einops import rearrange
from torch import Tensor, nn

from skyquilt.models.config import parse_model_config
from skyquilt.models.weights import build_denoiser, write_model_directory
from skyquilt_testing.models import random_model_config

PER_STATE_MIXER = "skyquilt_testing.plug_ins:per_state_mixer"
NOT_A_MODULE = "skyquilt_testing.plug_ins:not_a_module"


class PerStateMixer(nn.Module):
    """Mixes the channels of every state on its own (1x1 convolutions), shifted by the noise
    level and the state's calendar features: no state sees another."""

    def __init__(self, latent_shape: tuple[int, int, int], blanket_size: int, width: int = 4):
        super().__init__()
        channels = latent_shape[0]
        self.mix = nn.Sequential(
            nn.Conv2d(channels, width, 1), nn.SiLU(), nn.Conv2d(width, channels, 1)
        )
        self.noise = nn.Linear(1, channels)
        self.calendar = nn.Linear(4, channels)

    def forward(self, x: Tensor, c_noise: Tensor, time_features: Tensor) -> Tensor:
        """x: (B, K, C, H, W), c_noise: (B,), time_features: (B, K, 4) -> (B, K, C, H, W)."""
        mixed = rearrange(
            self.mix(rearrange(x, "b k c h w -> (b k) c h w")), "(b k) c h w -> b k c h w", b=len(x)
        )
        shift = self.noise(c_noise[:, None])[:, None] + self.calendar(time_features)
        return mixed + shift[..., None, None]


def per_state_mixer(latent_shape: tuple[int, int, int], blanket_size: int, **kwargs) -> nn.Module:
    """The factory a model's config.yaml names: `skyquilt_testing.plug_ins:per_state_mixer`."""
    return PerStateMixer(latent_shape, blanket_size, **kwargs)


def not_a_module(latent_shape: tuple[int, int, int], blanket_size: int, **kwargs) -> object:
    """A factory that builds a plain function, which has no weights to load: no Backbone."""
    return lambda x, c_noise, time_features: x


def write_plug_in_model(root: Path, name: str = PER_STATE_MIXER, seed: int = 0) -> Path:
    """A complete model directory under `root` whose config names the plug-in `name` (import
    path), with random weights: latent (2, 4, 8), K = 8. Returns its model_path."""
    config = random_model_config()
    config["backbone"] = {"name": name, "kwargs": {"width": 4}}
    torch.manual_seed(seed)
    denoiser = build_denoiser(parse_model_config(config), trust=True)
    shape = tuple(config["latent_shape"])
    model_path = Path(root) / "autoencoders/ae/0/latents/dump/denoisers/denoiser/0"
    return write_model_directory(
        model_path, config, denoiser, latent_mean=torch.zeros(shape), latent_std=torch.ones(shape)
    )

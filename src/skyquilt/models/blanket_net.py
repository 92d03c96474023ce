"""The built-in spatio-temporal blanket backbone: a small residual 3-D convolutional network.

Convolutions run over (time, y, x) of a blanket; the noise level modulates every block
(FiLM) and the calendar features of each state are added per frame, so the network knows
the hour of day and the season of each state it denoises.

Each block's convolution may be dilated in time (`dilations`): with dilations 1, 2, 4, ...
the network sees across a long blanket at the cost of a short one. A blanket denoiser should
see the whole blanket: what it cannot see, it cannot use, and a blanket longer than the
network's reach composes like a short one (skyquilt.scoring.gaussian).
"""

import math
from collections.abc import Sequence

import torch
from einops import rearrange
from torch import Tensor, nn

from skyquilt.models.calendar import FEATURES
from skyquilt.models.checkpoints import check_dilations


def sinusoidal_embedding(values: Tensor, size: int) -> Tensor:
    """values (B,) -> (B, size), sines and cosines at geometric frequencies."""
    frequencies = torch.exp(
        -math.log(1e4) * torch.arange(size // 2, device=values.device) / (size // 2)
    )
    angles = values[:, None].float() * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ResidualBlock(nn.Module):
    """h + conv(silu(modulate(norm(h)))): a residual 3-D conv block modulated by the noise.

    The convolution's taps are `dilation` states apart in time (1: neighbours).
    """

    def __init__(self, channels: int, embedding: int, dilation: int = 1):
        super().__init__()
        self.norm = nn.GroupNorm(min(8, channels), channels, affine=False)
        self.modulation = nn.Linear(embedding, 2 * channels)
        self.conv = nn.Conv3d(
            channels,
            channels,
            kernel_size=3,
            padding=(dilation, 1, 1),
            dilation=(dilation, 1, 1),
        )
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: Tensor, embedding: Tensor) -> Tensor:
        """h: (B, F, K, H, W), embedding: (B, E) -> (B, F, K, H, W)."""
        scale, shift = rearrange(self.modulation(embedding), "b (two f) -> two b f 1 1 1", two=2)
        return h + self.conv(nn.functional.silu(self.norm(h) * (1 + scale) + shift))


class BlanketNet(nn.Module):
    """Backbone F(x, c_noise, time_features) for blankets of latent states.

    x: (B, K, C, H, W), c_noise: (B,), time_features: (B, K, 4) -> (B, K, C, H, W).

    dilations: the time dilation of each block's convolution, one per block; None: 1 each.
    The network reaches 2 + sum(dilations) states to either side.
    """

    def __init__(
        self,
        latent_shape: tuple[int, int, int],
        blanket_size: int,
        hidden_channels: int = 32,
        blocks: int = 3,
        embedding: int = 64,
        dilations: Sequence[int] | None = None,
    ):
        super().__init__()
        dilations = check_dilations(dilations, blocks)
        channels = latent_shape[0]
        self.blanket_size = blanket_size
        self.embedding_size = embedding
        self.noise_embedding = nn.Sequential(
            nn.Linear(embedding, embedding), nn.SiLU(), nn.Linear(embedding, embedding)
        )
        self.time_embedding = nn.Linear(FEATURES, hidden_channels)
        self.encode = nn.Conv3d(channels, hidden_channels, kernel_size=3, padding=1)
        self.blocks = nn.ModuleList(
            [ResidualBlock(hidden_channels, embedding, dilation) for dilation in dilations]
        )
        self.decode = nn.Conv3d(hidden_channels, channels, kernel_size=3, padding=1)

    def forward(self, x: Tensor, c_noise: Tensor, time_features: Tensor) -> Tensor:
        """Predict the backbone's output for a batch of preconditioned blankets.

        Arguments:
            x: (B, K, C, H, W) preconditioned blankets c_in x_t.
            c_noise: (B,) preconditioned noise levels.
            time_features: (B, K, 4) calendar features of each state.

        Returns:
            F: (B, K, C, H, W).
        """
        embedding = self.noise_embedding(sinusoidal_embedding(c_noise, self.embedding_size))
        per_frame = rearrange(self.time_embedding(time_features), "b k f -> b f k 1 1")
        h = self.encode(rearrange(x, "b k c h w -> b c k h w")) + per_frame
        for block in self.blocks:
            h = block(h, embedding)
        return rearrange(self.decode(nn.functional.silu(h)), "b c k h w -> b k c h w")

"""The built-in spatio-temporal blanket backbone: a small residual 3-D convolutional network.

Convolutions run over (time, y, x) of a blanket; the noise level modulates every block
(FiLM) and the calendar features of each state are added per frame, so the network knows
the hour of day and the season of each state it denoises.

A blanket denoiser should see the whole blanket: what it cannot see, it cannot use, and a
blanket longer than the network's reach composes like a short one (skyquilt.scoring.gaussian).
Two ways to reach across a long blanket:

- `dilations`: each block's 3x3x3 convolution has its time taps `dilation` states apart, so
  dilations 1, 2, 4, ... reach far at the cost of a short blanket. Dilated taps skip the
  states between them, and what they skip shows up as hour-to-hour jitter in the samples.
- `time_kernel` (with `factorised`): each block also mixes every channel over time with a
  learned filter of `time_kernel` taps (`TimeMixing`), which can smooth and extrapolate over
  the whole blanket in one layer, the way the best denoiser of a slowly changing state
  does. With `factorised`, the blocks' convolutions are spatial only (1x3x3) and time is
  mixed by these filters alone: about half the cost of 3x3x3 blocks.
"""

import math

import torch
from einops import rearrange
from torch import Tensor, nn

from skyquilt.models.blanket_net_options import BlanketNetOptions
from skyquilt.models.calendar import FEATURES


def sinusoidal_embedding(values: Tensor, size: int) -> Tensor:
    """values (B,) -> (B, size), sines and cosines at geometric frequencies."""
    frequencies = torch.exp(
        -math.log(1e4) * torch.arange(size // 2, device=values.device) / (size // 2)
    )
    angles = values[:, None].float() * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class TimeMixing(nn.Module):
    """A depthwise convolution over time: `kernel` (odd) taps per channel.

    `padding` says what the taps that fall outside the blanket read: "zeros" (nothing), or
    "reflect", the blanket mirrored at its first and last state, so that a state near the
    blanket's edge is mixed with as many states as one inside, and a window of any length is
    mixed alike (the demo's coarse model, trained on windows of many lengths, keeps the
    spread of its block means with it: docs/composition.md).

    Applied as one banded (K, K) matrix per channel in a batched matrix product, which on a
    CPU is many times faster than the same convolution as a depthwise Conv3d. The taps start
    at zero, so a new block starts as the block without time mixing.
    """

    def __init__(self, channels: int, kernel: int, padding: str = "zeros"):
        super().__init__()
        self.reach = kernel // 2
        self.padding = padding
        self.taps = nn.Parameter(torch.zeros(channels, kernel))

    def forward(self, h: Tensor) -> Tensor:
        """h: (B, F, K, H, W) -> (B, F, K, H, W)."""
        return torch.einsum("fkj,bfjyx->bfkyx", self.band(h.shape[2]).to(h.dtype), h)

    def band(self, size: int) -> Tensor:
        """The (F, K, K) matrix of the mixing of a blanket of `size` states: output state k
        takes input state j with the weight of every tap that reads j."""
        position = torch.arange(size, device=self.taps.device)
        offset = torch.arange(-self.reach, self.reach + 1, device=position.device)
        read = position[:, None] + offset  # (K, kernel): the state tap t of output state k reads
        weights = self.taps[:, None, :].expand(-1, size, -1)  # (F, K, kernel)
        if self.padding == "reflect":
            read = mirrored(read, size)
        else:  # taps beyond the ends read nothing
            weights = weights * ((read >= 0) & (read < size))
            read = read.clamp(0, size - 1)
        channels = self.taps.shape[0]
        band = torch.zeros(channels, size, size, dtype=self.taps.dtype, device=read.device)
        return band.scatter_add(2, read.expand(channels, -1, -1), weights)


def mirrored(index: Tensor, size: int) -> Tensor:
    """Indices into a sequence of `size` states reflected at its ends (-1 -> 1, size -> size
    - 2), as often as needed to land inside; every index is 0 when size is 1."""
    if size == 1:
        return torch.zeros_like(index)
    period = 2 * (size - 1)
    index = index.remainder(period)
    return torch.where(index < size, index, period - index)


class ResidualBlock(nn.Module):
    """h + conv(a) [+ time_mixing(a)], a = silu(modulate(norm(h))): a residual block
    modulated by the noise.

    The convolution is 3x3x3 with its time taps `dilation` states apart (1: neighbours), or
    1x3x3 when `factorised`; `time_kernel` > 0 adds a `TimeMixing` of that many taps.
    """

    def __init__(
        self,
        channels: int,
        embedding: int,
        dilation: int = 1,
        time_kernel: int = 0,
        factorised: bool = False,
        time_padding: str = "zeros",
    ):
        super().__init__()
        self.norm = nn.GroupNorm(min(8, channels), channels, affine=False)
        self.modulation = nn.Linear(embedding, 2 * channels)
        self.conv = nn.Conv3d(
            channels,
            channels,
            kernel_size=(1, 3, 3) if factorised else 3,
            padding=(0 if factorised else dilation, 1, 1),
            dilation=(dilation, 1, 1),
        )
        self.time_mixing = TimeMixing(channels, time_kernel, time_padding) if time_kernel else None
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: Tensor, embedding: Tensor) -> Tensor:
        """h: (B, F, K, H, W), embedding: (B, E) -> (B, F, K, H, W)."""
        scale, shift = rearrange(self.modulation(embedding), "b (two f) -> two b f 1 1 1", two=2)
        a = nn.functional.silu(self.norm(h) * (1 + scale) + shift)
        if self.time_mixing is None:
            return h + self.conv(a)
        return h + self.conv(a) + self.time_mixing(a)


class BlanketNet(nn.Module):
    """Backbone F(x, c_noise, time_features) for blankets of latent states.

    x: (B, K, C, H, W), c_noise: (B,), time_features: (B, K, 4) -> (B, K, C, H, W).

    options: the keyword arguments of `BlanketNetOptions` (hidden_channels, blocks, embedding,
    dilations, time_kernel, factorised), the `backbone.kwargs` of the model config.
    Through its convolutions the network reaches 2 + sum over blocks of max(dilation,
    time_kernel // 2) states to either side (a factorised block: time_kernel // 2).
    """

    def __init__(self, latent_shape: tuple[int, int, int], blanket_size: int, **options):
        super().__init__()
        options = BlanketNetOptions(**options)
        hidden_channels, embedding = options.hidden_channels, options.embedding
        channels = latent_shape[0]
        self.blanket_size = blanket_size
        self.embedding_size = embedding
        self.noise_embedding = nn.Sequential(
            nn.Linear(embedding, embedding), nn.SiLU(), nn.Linear(embedding, embedding)
        )
        self.time_embedding = nn.Linear(FEATURES, hidden_channels)
        self.encode = nn.Conv3d(channels, hidden_channels, kernel_size=3, padding=1)
        self.blocks = nn.ModuleList(
            [
                ResidualBlock(
                    hidden_channels,
                    embedding,
                    dilation,
                    options.time_kernel,
                    options.factorised,
                    options.time_padding,
                )
                for dilation in options.block_dilations
            ]
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

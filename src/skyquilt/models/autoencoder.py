"""A small convolutional autoencoder between states (V, H, W) and latents (C, H/f, W/f).

The encoder maps a normalised state to a latent on a grid `2**downsamplings` times coarser;
the decoder maps it back, conditioned on the state's calendar features (hour of day, day of
year), so the part of the weather that the clock explains (the diurnal tide, the season)
need not be stored in the latent. Convolutions wrap around in longitude; both networks also
see the latitude and longitude of every grid point, since the dynamics are not translation
invariant on the sphere.

Directory (docs/architecture.md, "Model directory"): `config.yaml` (architecture, variables,
normalisation statistics), `weights.safetensors`; `load_autoencoder(directory)` rebuilds the
module from them.
"""

import math
from pathlib import Path

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.nn import functional

from skyquilt.io.atomic import write_yaml
from skyquilt.io.strict_yaml import load_strict
from skyquilt.models.calendar import FEATURES
from skyquilt.models.weights import load_state_dict, save_state_dict

CONFIG_FILE = "config.yaml"
RESAMPLING = ("interpolate", "shuffle")
WEIGHTS_FILE = "weights.safetensors"


def grid_coordinates(height: int, width: int) -> Tensor:
    """(4, H, W): sin and cos of latitude (90 -> -90, poles included) and of longitude."""
    latitude = torch.linspace(math.pi / 2, -math.pi / 2, height)[:, None].expand(height, width)
    longitude = (2 * math.pi * torch.arange(width) / width)[None, :].expand(height, width)
    return torch.stack([latitude.sin(), latitude.cos(), longitude.sin(), longitude.cos()])


class SphereConv(nn.Module):
    """3x3 convolution, periodic in longitude, edge-replicated at the poles."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C_in, H, W) -> (B, C_out, H / stride, W / stride)."""
        x = functional.pad(x, (1, 1, 0, 0), mode="circular")
        return self.conv(functional.pad(x, (0, 0, 1, 1), mode="replicate"))


class DoubledConv(SphereConv):
    """Bilinear doubling, then a 3x3 SphereConv: (B, C_in, H, W) -> (B, C_out, 2H, 2W)."""

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C_in, H, W) -> (B, C_out, 2H, 2W)."""
        return super().forward(_double(x))


class Shuffled(nn.Module):
    """Resampling by a factor 2 that keeps every value: space-to-depth, or depth-to-space.

    down: (B, C_in, H, W) -> pixel_unshuffle -> (B, 4 C_in, H/2, W/2) -> 3x3 SphereConv -> C_out;
    up: (B, C_in, H, W) -> 3x3 SphereConv -> (B, 4 C_out, H, W) -> pixel_shuffle -> (B, C_out,
    2H, 2W). Unlike a strided convolution or bilinear doubling, nothing limits the wavenumbers
    that pass: a wave of the fine grid survives down to the coarsest grid as a pattern across
    channels, and the decoder can draw it again.
    """

    def __init__(self, in_channels: int, out_channels: int, direction: str):
        super().__init__()
        self.direction = direction
        if direction == "down":
            self.conv = SphereConv(4 * in_channels, out_channels)
        else:
            self.conv = SphereConv(in_channels, 4 * out_channels)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C_in, H, W) -> (B, C_out, H / 2, W / 2) down, (B, C_out, 2H, 2W) up."""
        if self.direction == "down":
            return self.conv(functional.pixel_unshuffle(x, 2))
        return functional.pixel_shuffle(self.conv(x), 2)


class ResidualBlock(nn.Module):
    """h + conv(gelu(conv(gelu(film(norm(h)))))), FiLM-modulated when given a conditioning."""

    def __init__(self, channels: int, conditioning: int = 0):
        super().__init__()
        self.norm = nn.GroupNorm(min(8, channels), channels)
        self.first = SphereConv(channels, channels)
        self.second = SphereConv(channels, channels)
        self.film = nn.Linear(conditioning, 2 * channels) if conditioning else None

    def forward(self, h: Tensor, conditioning: Tensor | None = None) -> Tensor:
        """h: (B, F, H, W), conditioning: (B, E) or None -> (B, F, H, W)."""
        x = self.norm(h)
        if self.film is not None:
            scale, shift = rearrange(self.film(conditioning), "b (two f) -> two b f 1 1", two=2)
            x = x * (1 + scale) + shift
        return h + self.second(functional.gelu(self.first(functional.gelu(x))))


class Autoencoder(nn.Module):
    """The autoencoder between normalised states and latents, f = 2**downsamplings coarser.

    encode: x (B, V, H, W) normalised -> z (B, C, H/f, W/f);
    decode: z, time_features (B, 4) -> x (B, V, H, W) normalised.

    Level l (grid 2**(l+1) times coarser than the state) has `width * 2**l` channels; the
    full-resolution grid only sees the first and the last resampling step, which keeps
    training within a few CPU minutes.

    Arguments:
        variables: the V variable names, one channel each.
        grid: (H, W), divisible by f.
        latent_channels: C.
        width: the channels of the finest level.
        downsamplings: the number of halvings of the grid, >= 1.
        mean, std: (V,) the dataset's normalisation statistics, x = (phys - mean) / std;
            0 and 1 when None.
        resampling: how the grid is halved and doubled: "interpolate" (strided convolutions
            down, bilinear doubling up, the full grid seen by one convolution each way) or
            "shuffle" (space-to-depth and depth-to-space, `Shuffled`: no wavenumber is cut).
    """

    def __init__(
        self,
        variables: list[str],
        grid: tuple[int, int],
        latent_channels: int = 8,
        width: int = 16,
        downsamplings: int = 2,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        resampling: str = "interpolate",
    ):
        super().__init__()
        self.variables = list(variables)
        self.grid = tuple(grid)
        height, width_points = self.grid
        factor = 2**downsamplings
        if downsamplings < 1 or height % factor or width_points % factor:
            raise ValueError(f"grid {self.grid} is not divisible by 2**downsamplings = {factor}")
        if resampling not in RESAMPLING:
            raise ValueError(f"resampling {resampling!r} is not one of {RESAMPLING}")
        self.resampling = resampling
        self.latent_shape = (latent_channels, height // factor, width_points // factor)
        count = len(self.variables)
        self.register_buffer("mean", torch.tensor(mean or [0.0] * count, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std or [1.0] * count, dtype=torch.float32))
        self.register_buffer("fine_coordinates", grid_coordinates(height, width_points))
        self.register_buffer("coarse_coordinates", grid_coordinates(*self.latent_shape[1:]))
        widths = [width * 2**level for level in range(downsamplings)]
        steps = list(zip(widths[:-1], widths[1:], strict=True))  # (finer, coarser) widths
        self.widths = widths
        coordinates, embedding = 4, 4 * FEATURES

        shuffled = resampling == "shuffle"

        def down(finer: int, coarser: int) -> nn.Module:
            return Shuffled(finer, coarser, "down") if shuffled else SphereConv(finer, coarser, 2)

        def up(coarser: int, finer: int) -> nn.Module:
            return Shuffled(coarser, finer, "up") if shuffled else DoubledConv(coarser, finer)

        self.encoder_input = down(count + coordinates, widths[0])
        self.encoder_blocks = nn.ModuleList([ResidualBlock(size) for size in widths])
        self.downsample = nn.ModuleList([down(finer, coarser) for finer, coarser in steps])
        self.encoder_output = nn.Conv2d(widths[-1], latent_channels, kernel_size=1)

        self.time_embedding = nn.Sequential(
            nn.Linear(FEATURES, embedding), nn.GELU(), nn.Linear(embedding, embedding)
        )
        self.decoder_input = SphereConv(latent_channels + coordinates, widths[-1])
        self.decoder_blocks = nn.ModuleList(
            [ResidualBlock(size, embedding) for size in reversed(widths)]
        )
        self.upsample = nn.ModuleList([up(coarser, finer) for finer, coarser in reversed(steps)])
        if shuffled:
            self.decoder_output = up(widths[0], count)
        else:
            self.decoder_output = SphereConv(widths[0] + coordinates, count)

    def _with_coordinates(self, x: Tensor, coordinates: Tensor) -> Tensor:
        return torch.cat([x, coordinates.expand(x.shape[0], -1, -1, -1).to(x.dtype)], dim=1)

    def encode(self, x: Tensor) -> Tensor:
        """x: (B, V, H, W) normalised -> z: (B, C, h, w)."""
        h = self.encoder_input(self._with_coordinates(x, self.fine_coordinates))
        h = self.encoder_blocks[0](h)
        for down, block in zip(self.downsample, self.encoder_blocks[1:], strict=True):
            h = block(down(functional.gelu(h)))
        return self.encoder_output(functional.gelu(h))

    def decode(self, z: Tensor, time_features: Tensor) -> Tensor:
        """z: (B, C, h, w), time_features: (B, 4) -> x: (B, V, H, W) normalised."""
        embedding = self.time_embedding(time_features.to(z.dtype))
        h = self.decoder_input(self._with_coordinates(z, self.coarse_coordinates))
        h = self.decoder_blocks[0](h, embedding)
        for up, block in zip(self.upsample, self.decoder_blocks[1:], strict=True):
            h = block(up(functional.gelu(h)), embedding)
        if self.resampling == "shuffle":
            return self.decoder_output(functional.gelu(h))
        h = self._with_coordinates(_double(functional.gelu(h)), self.fine_coordinates)
        return self.decoder_output(h)

    def forward(self, x: Tensor, time_features: Tensor) -> Tensor:
        """Reconstruction: x (B, V, H, W), time_features (B, 4) -> (B, V, H, W)."""
        return self.decode(self.encode(x), time_features)

    def normalise(self, physical: Tensor) -> Tensor:
        """(B, V, H, W) in physical units -> normalised."""
        return (physical - self.mean[:, None, None]) / self.std[:, None, None]

    def denormalise(self, x: Tensor) -> Tensor:
        """(B, V, H, W) normalised -> physical units."""
        return x * self.std[:, None, None] + self.mean[:, None, None]

    def architecture(self) -> dict:
        """The constructor arguments, as stored in config.yaml."""
        return {
            "variables": self.variables,
            "grid": list(self.grid),
            "latent_channels": self.latent_shape[0],
            "width": self.widths[0],
            "downsamplings": len(self.widths),
            "resampling": self.resampling,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }


def _double(x: Tensor) -> Tensor:
    """(B, F, H, W) -> (B, F, 2H, 2W), bilinear, periodic in longitude."""
    x = functional.pad(functional.pad(x, (1, 1, 0, 0), mode="circular"), (0, 0, 1, 1), "replicate")
    x = functional.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    return x[..., 2:-2, 2:-2]


def save_autoencoder(model: Autoencoder, directory: Path | str, extra: dict | None = None) -> None:
    """Write config.yaml ({architecture, latent_shape, **extra}) and weights.safetensors."""
    directory = Path(directory)
    config = {"architecture": model.architecture(), "latent_shape": list(model.latent_shape)}
    save_state_dict(model, directory / WEIGHTS_FILE)
    write_yaml({**config, **(extra or {})}, directory / CONFIG_FILE)


def load_autoencoder(directory: Path | str) -> Autoencoder:
    """The autoencoder stored in `directory` (config.yaml + weights.safetensors), in eval mode."""
    directory = Path(directory)
    config = load_strict(directory / CONFIG_FILE)  # a key given twice is refused
    model = Autoencoder(**config["architecture"])
    model.load_state_dict(load_state_dict(directory / WEIGHTS_FILE))
    return model.eval()

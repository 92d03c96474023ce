"""Training and evaluation of the demo autoencoder on normalised states.

Loss and metric are area-weighted over the grid (WeatherBench2 convention), so the many
grid points near the poles do not dominate.
"""

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from skyquilt.demo.autoencoder import Autoencoder


@dataclass(frozen=True)
class TrainSettings:
    """Keys of the config section `demo.autoencoder`."""

    latent_channels: int = 8
    width: int = 16
    downsamplings: int = 2
    steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 3e-3
    max_minutes: float = 4.0
    seed: int = 0


def area_weights(latitudes: np.ndarray) -> Tensor:
    """Cell areas of an equiangular grid with poles, latitudes (H,) degrees -> (H,), mean 1.

    A cell spans half a grid spacing either side of its latitude, clipped at the poles.
    """
    latitudes = np.deg2rad(np.asarray(latitudes, dtype=np.float64))
    half = np.abs(latitudes[1] - latitudes[0]) / 2
    upper = np.minimum(latitudes + half, np.pi / 2)
    lower = np.maximum(latitudes - half, -np.pi / 2)
    weights = np.sin(upper) - np.sin(lower)
    return torch.from_numpy(weights / weights.mean()).float()


def weighted_squared_error(prediction: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """Area-weighted mean squared error per variable: (B, V, H, W) x2, weights (H,) -> (V,)."""
    return ((prediction - target).square() * weights[:, None]).mean(dim=(0, 2, 3))


def train_autoencoder(
    model: Autoencoder,
    states: Tensor,
    features: Tensor,
    weights: Tensor,
    settings: TrainSettings,
    progress: bool = False,
) -> list[float]:
    """Fit `model` to reconstruct states (N, V, H, W) normalised, with features (N, 4).

    Adam with a cosine learning-rate decay over `settings.steps` steps of random batches;
    stops early once `settings.max_minutes` of wall time have passed. Returns the loss of
    every step taken.
    """
    generator = torch.Generator().manual_seed(settings.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * min(step / settings.steps, 1)))
    )
    deadline = time.monotonic() + 60 * settings.max_minutes
    losses = []
    model.train()
    bar = tqdm(range(settings.steps), desc="autoencoder", unit="step", disable=not progress)
    for _ in bar:
        batch = torch.randint(len(states), (settings.batch_size,), generator=generator)
        reconstruction = model(states[batch], features[batch])
        loss = weighted_squared_error(reconstruction, states[batch], weights).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        if time.monotonic() > deadline:
            break
    model.eval()
    return losses


@torch.no_grad()
def reconstruction_rmse(
    model: Autoencoder, states: Tensor, features: Tensor, weights: Tensor, batch_size: int = 256
) -> Tensor:
    """Area-weighted RMSE per variable, in normalised units: states (N, V, H, W) -> (V,)."""
    total = torch.zeros(states.shape[1], dtype=torch.float64)
    for start in range(0, len(states), batch_size):
        chunk = slice(start, start + batch_size)
        error = weighted_squared_error(model(states[chunk], features[chunk]), states[chunk], weights)
        total += error.double() * len(states[chunk])
    return (total / len(states)).sqrt().float()

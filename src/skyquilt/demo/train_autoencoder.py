"""Training and evaluation of the demo autoencoder on normalised states.

Loss and metric are area-weighted over the grid (WeatherBench2 convention), so the many
grid points near the poles do not dominate.
"""

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from torch import Tensor
from tqdm import tqdm

from skyquilt.demo.dataset import (
    VARIABLES,
    area_weights,
    read_stats,
    stack_states,
)
from skyquilt.demo.training import TrainingBudget
from skyquilt.io.atomic import write_json
from skyquilt.models.autoencoder import Autoencoder, save_autoencoder
from skyquilt.models.calendar import time_features
from skyquilt.planning.demo_settings import AutoencoderSettings, held_out_mask

METRICS_FILE = "metrics.json"


def weighted_squared_error(prediction: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """Area-weighted mean squared error per variable: (B, V, H, W) x2, weights (H,) -> (V,)."""
    return ((prediction - target).square() * weights[:, None]).mean(dim=(0, 2, 3))


def train_autoencoder(
    model: Autoencoder,
    states: Tensor,
    features: Tensor,
    weights: Tensor,
    settings: AutoencoderSettings,
    progress: bool = False,
) -> list[float]:
    """Fit `model` to reconstruct states (N, V, H, W) normalised, with features (N, 4).

    Adam with a cosine learning-rate decay over random batches; the decay follows whichever
    budget runs out first, `settings.steps` or `settings.max_minutes` of wall time, so that a
    run cut short by the clock still ends annealed. Returns the loss of every step taken.
    """
    generator = torch.Generator().manual_seed(settings.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    budget = TrainingBudget(settings.steps, settings.max_minutes)
    losses = []
    model.train()
    bar = tqdm(total=settings.steps, desc="autoencoder", unit="step", disable=not progress)
    while not budget.spent(len(losses)):
        for group in optimiser.param_groups:
            group["lr"] = settings.learning_rate * budget.cosine(len(losses))
        batch = torch.randint(len(states), (settings.batch_size,), generator=generator)
        reconstruction = model(states[batch], features[batch])
        loss = weighted_squared_error(reconstruction, states[batch], weights).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    bar.close()
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
        error = weighted_squared_error(
            model(states[chunk], features[chunk]), states[chunk], weights
        )
        total += error.double() * len(states[chunk])
    return (total / len(states)).sqrt().float()


def normalised_states(dataset: xr.Dataset, variables: list[str], stats: dict) -> Tensor:
    """The dataset's states (T, V, H, W), normalised with {variable: {mean, std}}."""
    states = torch.from_numpy(stack_states(dataset, variables))
    mean = torch.tensor([stats[name]["mean"] for name in variables])
    std = torch.tensor([stats[name]["std"] for name in variables])
    return (states - mean[:, None, None]) / std[:, None, None]


def held_out_evaluation(dataset: xr.Dataset, held_out: tuple[str, str]) -> Tensor:
    """Which of the dataset's states are held out for evaluation: (T,) bool.

    Raises ValueError unless the held-out period covers some but not all of the dataset.
    """
    evaluation = torch.from_numpy(held_out_mask(dataset.time.values, held_out))
    if evaluation.all() or not evaluation.any():
        raise ValueError(
            f"demo.dataset.held_out {list(held_out)} must cover some but not all of the dataset "
            f"({dataset.time.values[0]} .. {dataset.time.values[-1]})"
        )
    return evaluation


def seeded_autoencoder(
    dataset: xr.Dataset, variables: list[str], stats: dict, settings: AutoencoderSettings
) -> Autoencoder:
    """An untrained autoencoder for the dataset's grid, its weights drawn from `settings.seed`.

    Seeds torch's global generator right before the weights are initialised.
    """
    torch.manual_seed(settings.seed)
    return Autoencoder(
        variables,
        (dataset.sizes["latitude"], dataset.sizes["longitude"]),
        settings.latent_channels,
        settings.width,
        settings.downsamplings,
        mean=[stats[name]["mean"] for name in variables],
        std=[stats[name]["std"] for name in variables],
        resampling=settings.resampling,
    )


def autoencoder_metrics(
    dataset: xr.Dataset,
    variables: list[str],
    stats: dict,
    relative: Tensor,
    description: str,
    losses: list[float],
    wall_seconds: float,
) -> dict:
    """The contents of metrics.json.

    Arguments:
        dataset: the demo dataset, for the variables' units.
        variables: the V variable names.
        stats: {variable: {mean, std}}, the normalisation statistics.
        relative: (V,) held-out RMSE per variable, relative to the normalisation std.
        description: what the RMSE was evaluated on.
        losses: the loss of every training step.
        wall_seconds: the training time.
    """
    return {
        "evaluated_on": description,
        "variables": {
            name: {
                "rmse": float(relative[index]) * stats[name]["std"],
                "units": dataset[name].attrs.get("units", ""),
                "relative_rmse": float(relative[index]),
            }
            for index, name in enumerate(variables)
        },
        "training": {
            "steps": len(losses),
            "wall_seconds": round(wall_seconds, 1),
            "final_loss": float(np.mean(losses[-50:])),
        },
    }


def make_autoencoder(
    dataset_path: Path | str,
    directory: Path | str,
    settings: AutoencoderSettings,
    held_out: tuple[str, str],
    progress: bool = False,
) -> dict:
    """Train the demo autoencoder on the dataset's training period and write its directory.

    Writes `config.yaml`, `weights.safetensors` and `metrics.json` (area-weighted RMSE per
    variable on the held-out states, in physical units and relative to the normalisation
    std) into `directory`; returns the metrics.
    """
    dataset = xr.open_zarr(dataset_path).load()
    stats = read_stats(dataset_path)
    variables = [name for name in VARIABLES if name in dataset]
    states = normalised_states(dataset, variables, stats)
    features = time_features(dataset.time.values)
    evaluation = held_out_evaluation(dataset, held_out)
    weights = area_weights(dataset.latitude.values)

    model = seeded_autoencoder(dataset, variables, stats, settings)
    start = time.monotonic()
    losses = train_autoencoder(
        model, states[~evaluation], features[~evaluation], weights, settings, progress
    )
    wall_seconds = time.monotonic() - start
    relative = reconstruction_rmse(model, states[evaluation], features[evaluation], weights)
    description = (
        f"{int(evaluation.sum())} held-out states ({held_out[0]} .. {held_out[1]}), "
        "area-weighted RMSE"
    )
    metrics = autoencoder_metrics(
        dataset, variables, stats, relative, description, losses, wall_seconds
    )
    extra = {
        "dataset": str(dataset_path),
        "held_out": list(held_out),
        "train": dataclasses.asdict(settings),
    }
    directory = Path(directory)
    save_autoencoder(model, directory, extra)
    write_json(metrics, directory / METRICS_FILE)
    return metrics

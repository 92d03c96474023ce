"""Training of the demo blanket denoiser on windows of consecutive standardised latents.

A training example is a blanket of K consecutive hourly latent states from the training
period, standardised with the latent statistics, with the calendar features of each state.
The loss is the EDM denoising loss (skyquilt.models.precondition) at noise levels drawn from
the model's schedule, or log-normally (`sigma_log_mean`, `sigma_log_std`, as in EDM) to
spend the training where the samples' hour-to-hour changes are decided: at noise levels
comparable to those changes, far below the uniform schedule's median of 1. The spread must also
reach the large noise levels (10 to 100 for the demo's standardised blankets of 48 states) at
which a blanket's slow, large-scale patterns are decided: what the denoiser gets wrong there
stays in the samples as missing variance. A fixed set of
held-out blankets, noise levels and noises gives a deterministic validation loss; the weights
with the lowest one are kept as `best`.

The coarse model of two-scale composition (`CoarseSettings`) trains the same way on block
means: a training example is the means of `blanket_size` consecutive blocks of `block` hourly
states, cut to a length drawn uniformly from `min_blanket_size` to `blanket_size` blocks per
batch (it is asked for windows of every such length), with the block means of the states'
calendar features.
"""

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
import xarray as xr
import yaml
from torch import Tensor
from tqdm import tqdm

from skyquilt.demo.latents import LATENTS_FILE, STATS_FILE
from skyquilt.demo.training import TrainingBudget
from skyquilt.diffusion.schedules import DiffusionSchedule, build_schedule, sample_training_sigma
from skyquilt.io.atomic import write_csv, write_yaml
from skyquilt.io.shards import LATENT
from skyquilt.models.calendar import time_features
from skyquilt.models.config import parse_model_config
from skyquilt.models.precondition import BlanketDenoiser, denoising_loss
from skyquilt.models.weights import build_denoiser, write_model_directory
from skyquilt.planning.demo_settings import (
    CoarseSettings,
    DenoiserSettings,
    coarse_declaration,
    denoiser_config,
    held_out_mask,
    window_starts,
)
from skyquilt.sampling.coarse import block_means

TRAIN_LOG_FILE = "train_log.csv"


def evenly_spaced(starts: np.ndarray, count: int) -> Tensor:
    """`count` of the window starts (N,), spread evenly from the first to the last: (count,)."""
    return torch.from_numpy(starts[np.linspace(0, len(starts) - 1, count).astype(int)])


def blankets(series: Tensor, starts: Tensor, blanket_size: int, block: int = 1) -> Tensor:
    """series (T, ...) and starts (B,) -> the windows (B, K, ...): K states, or the means of K
    consecutive blocks of `block` states."""
    windows = series[starts[:, None] + torch.arange(blanket_size * block)]
    return windows if block == 1 else block_means(windows, block, dim=1)


def block_of(settings: DenoiserSettings) -> int:
    """States per state of the model: a coarse model's block, else 1."""
    return settings.block if isinstance(settings, CoarseSettings) else 1


def window_length(settings: DenoiserSettings, generator: torch.Generator) -> int:
    """The length of a batch's windows: K, or for a coarse model one drawn uniformly from
    min_blanket_size to K (the fine model draws nothing, so its training is unchanged)."""
    if (
        not isinstance(settings, CoarseSettings)
        or settings.min_blanket_size == settings.blanket_size
    ):
        return settings.blanket_size
    shortest = settings.min_blanket_size
    return int(torch.randint(shortest, settings.blanket_size + 1, (), generator=generator))


@dataclass
class Validation:
    """A fixed validation set: blankets, their features, one noise level each, fixed noises.

    clean: (N, K, C, H, W) blankets; features: (N, K, 4); sigma: (N,) noise levels, spread
    over the schedule's quantiles; noise: (N, K, C, H, W) standard normal draws.
    """

    clean: Tensor
    features: Tensor
    sigma: Tensor
    noise: Tensor

    @classmethod
    def draw(
        cls,
        latents: Tensor,
        features: Tensor,
        starts: np.ndarray,
        count: int,
        schedule: DiffusionSchedule,
        blanket_size: int,
        seed: int,
        block: int = 1,
    ) -> "Validation":
        """Draw `count` validation blankets, evenly spaced over the window starts.

        Arguments:
            latents: (T, C, H, W) standardised latent states.
            features: (T, 4) their calendar features.
            starts: (S,) the first state of every window that may be drawn.
            count: N, the number of blankets.
            schedule: gives the noise levels, at the quantiles (i + 0.5) / N of t.
            blanket_size: K.
            seed: seed of the generator of the fixed noises.
            block: states per state of the model (blankets of block means when > 1).
        """
        chosen = evenly_spaced(starts, count)
        clean = blankets(latents, chosen, blanket_size, block)
        quantiles = (torch.arange(count, dtype=torch.float64) + 0.5) / count
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(clean.shape, generator=generator)
        sigma = schedule.sigma(quantiles).float()
        return cls(clean, blankets(features, chosen, blanket_size, block), sigma, noise)

    @torch.no_grad()
    def loss(self, denoiser: BlanketDenoiser) -> float:
        """The EDM loss of `denoiser` on this fixed set (same weighting as training)."""
        sigma = self.sigma.reshape(-1, 1, 1, 1, 1)
        estimate = denoiser(self.clean + sigma * self.noise, self.sigma, self.features)
        error = (estimate - self.clean).square().mean(dim=(1, 2, 3, 4))
        return float(((self.sigma**2 + 1) / self.sigma**2 * error).mean())


def train_denoiser(
    denoiser: BlanketDenoiser,
    latents: Tensor,
    features: Tensor,
    train_starts: np.ndarray,
    validation: Validation,
    schedule: DiffusionSchedule,
    settings: DenoiserSettings,
    progress: bool = False,
) -> tuple[BlanketDenoiser, list[dict]]:
    """Fit `denoiser` on random blankets of standardised latents (T, C, H, W).

    Adam with a cosine learning-rate decay over the budget (steps or wall time, whichever
    runs out first), and an exponential moving average of the weights (decay `ema_decay`,
    ramped up as (1 + step) / (10 + step) so the initial weights fade fast; 0 keeps the raw
    weights), which is what is validated and kept. Returns the averaged weights of
    lowest validation loss (`best`; `denoiser` itself ends as the last average, `last`) and
    the log, one row per step: step, loss, validation_loss (every `validation_every` steps and
    at the end, else None), learning_rate, seconds.
    """
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    optimiser = torch.optim.Adam(denoiser.parameters(), lr=settings.learning_rate)
    budget = TrainingBudget(settings.steps, settings.max_minutes)
    starts = torch.from_numpy(train_starts)
    average = copy.deepcopy(denoiser).eval()
    best, best_loss, log = copy.deepcopy(denoiser), math.inf, []
    bar = tqdm(total=settings.steps, desc="denoiser", unit="step", disable=not progress)
    while not budget.spent(len(log)):
        learning_rate = settings.learning_rate * budget.cosine(len(log))
        for group in optimiser.param_groups:
            group["lr"] = learning_rate
        denoiser.train()
        chosen = starts[torch.randint(len(starts), (settings.batch_size,), generator=generator)]
        sigma = training_sigmas(schedule, settings, generator)
        length = window_length(settings, generator)
        clean = blankets(latents, chosen, length, block_of(settings))
        batch_features = blankets(features, chosen, length, block_of(settings))
        loss = denoising_loss(denoiser, clean, sigma, batch_features)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(denoiser.parameters(), 1.0)
        optimiser.step()
        update_average(average, denoiser, min(settings.ema_decay, (1 + len(log)) / (10 + len(log))))
        row = {"step": len(log) + 1, "loss": loss.item(), "validation_loss": None}
        row |= {"learning_rate": learning_rate, "seconds": round(budget.elapsed(), 2)}
        log.append(row)
        bar.update()
        if row["step"] % settings.validation_every == 0 or budget.spent(row["step"]):
            row["validation_loss"] = validation.loss(average)
            if row["validation_loss"] < best_loss:
                best, best_loss = copy.deepcopy(average), row["validation_loss"]
            bar.set_postfix(loss=f"{loss.item():.3f}", valid=f"{row['validation_loss']:.3f}")
    bar.close()
    denoiser.load_state_dict(average.state_dict())
    return best.eval(), log


def training_sigmas(
    schedule: DiffusionSchedule, settings: DenoiserSettings, generator: torch.Generator
) -> Tensor:
    """A batch of training noise levels: (batch_size,) float32 within the schedule's range.

    log sigma ~ N(sigma_log_mean, sigma_log_std^2), clipped to [sigma_min, sigma_max], or,
    when sigma_log_mean is None, the schedule's own: t ~ U(0, 1) mapped through it.
    """
    if settings.sigma_log_mean is None:
        return sample_training_sigma(schedule, settings.batch_size, generator).float()
    log_sigma = torch.randn(settings.batch_size, generator=generator)
    log_sigma = settings.sigma_log_mean + settings.sigma_log_std * log_sigma
    return log_sigma.exp().clamp(schedule.sigma_min, schedule.sigma_max)


@torch.no_grad()
def update_average(average: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """average <- decay * average + (1 - decay) * model, parameter by parameter."""
    for averaged, current in zip(average.parameters(), model.parameters(), strict=True):
        averaged.lerp_(current, 1 - decay)


def load_standardised_latents(latent_dir: Path | str) -> tuple[Tensor, np.ndarray]:
    """Latents of latent_dir standardised with its statistics, (T, C, H, W), and times (T,)."""
    latent_dir = Path(latent_dir)
    dump = xr.open_zarr(latent_dir / LATENTS_FILE)
    statistics = safetensors.torch.load_file(latent_dir / STATS_FILE)
    latents = torch.from_numpy(dump[LATENT].values)
    return (latents - statistics["mean"]) / statistics["std"], dump.time.values


def make_denoiser(
    latent_dir: Path | str,
    model_path: Path | str,
    settings: DenoiserSettings,
    held_out: tuple[str, str],
    progress: bool = False,
    coarse: CoarseSettings | None = None,
) -> dict:
    """Train the demo denoiser (or, with CoarseSettings, its coarse model) on the latent dump
    and write its model directory.

    Blankets come from the training period, validation blankets from the held-out period.
    Writes config.yaml (declaring the coarse model of `coarse`, when enabled),
    best.safetensors, last.safetensors and train_log.csv; returns a summary (steps, wall
    time, final and best validation loss).
    """
    latents, times = load_standardised_latents(latent_dir)
    features = time_features(times)
    held = held_out_mask(times, held_out)
    config = denoiser_config(settings, tuple(latents.shape[1:]), coarse)
    model = parse_model_config(config)
    schedule = build_schedule(model.noise_schedule, model.sigma_min, model.sigma_max)
    span = settings.blanket_size * block_of(settings)
    validation = Validation.draw(
        latents,
        features,
        window_starts(held, span),
        settings.validation_blankets,
        schedule,
        settings.blanket_size,
        settings.seed,
        block_of(settings),
    )
    torch.manual_seed(settings.seed)
    denoiser = build_denoiser(model)
    best, log = train_denoiser(
        denoiser,
        latents,
        features,
        window_starts(~held, span),
        validation,
        schedule,
        settings,
        progress,
    )
    write_model_directory(Path(model_path), config, best, last=denoiser)
    write_csv(log, Path(model_path) / TRAIN_LOG_FILE)
    validations = [row["validation_loss"] for row in log if row["validation_loss"] is not None]
    return {
        "steps": len(log),
        "wall_seconds": log[-1]["seconds"],
        "final_validation_loss": validations[-1],
        "best_validation_loss": min(validations),
    }


def declare_coarse(model_path: Path | str, coarse: CoarseSettings | None) -> None:
    """Make the config.yaml of the model at `model_path` declare the coarse model of `coarse`
    (or none): installed shipped weights declare the coarse model this demo builds."""
    config_file = Path(model_path) / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config.pop("coarse", None)
    declaration = coarse_declaration(coarse)
    write_yaml(config if declaration is None else config | {"coarse": declaration}, config_file)

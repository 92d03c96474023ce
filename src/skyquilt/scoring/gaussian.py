"""What blanket composition costs a perfect model, computed exactly on a Gaussian process.

A stationary Gaussian process with autocorrelation r(tau) has, for a window of K consecutive
states, the exact denoiser E[x | x + sigma eps] = R (R + sigma^2 I)^-1 (x + sigma eps) with
R_ij = r(|i - j|). Sampling with that window denoiser is the best any trained blanket model
can do. Two ways of sampling are compared, with the same sampler and steps:

- single windows: one blanket of K states, denoised as a whole;
- composed trajectories: T states covered by blankets of K with overlap O, each blanket
  denoised by the window denoiser and folded back (`skyquilt.sampling.blankets.fold`), as
  generation does.

Everything is linear, so the samples' covariance is exact, with no sampling error:

- a deterministic sampler (lms, ddim) maps the initial noise x1 to x0 = A x1 and the samples
  are N(0, c^2 A A^T), c^2 = alpha_1^2 + sigma_1^2: running the sampler on the identity matrix
  gives A;
- ddpm's ancestral step is, in VE coordinates (x / alpha_t, noise level s_t = sigma_t /
  alpha_t, rho = s_s / s_t), x_s = rho^2 x_t + (1 - rho^2) D(x_t) + s_s sqrt(1 - rho^2) eps
  (azula's DDPM step divided by alpha_s), so the covariance goes from step to step as
  C_s = M C_t M^T + s_s^2 (1 - rho^2) I with M = rho^2 I + (1 - rho^2) G_t, G_t the
  denoiser's matrix.

From the covariances come the two numbers of the composition-fidelity check, composed /
single:

- std ratio: sqrt(mean variance of the states);
- hourly-change ratio: sqrt(mean E[(x_{t+1} - x_t)^2]) (for Gaussian states the mean absolute
  change is this times sqrt(2 / pi), so the ratio is the same).

The composed denoiser drops what states outside a blanket say about those inside it, most at
high noise, where it matters for the slow components. When the process stays correlated much
longer than a blanket (weather at hourly steps: days vs a few hours), composed trajectories lose
variance and gain hour-to-hour jitter however good the model is. `composition_penalty` measures
that for the autocorrelation of a user's own data, before any training.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from skyquilt.diffusion.samplers import build_sampler
from skyquilt.diffusion.schedules import DiffusionSchedule
from skyquilt.sampling.blankets import fold, padded_size, unfold

# The samplers whose samples' covariance is computed exactly here (see the module's docstring).
LINEAR_SAMPLERS = ("lms", "ddim", "ddpm")
# denoise(x, sigma) -> E[x | x + sigma eps]: the signature the samplers call.
Denoise = Callable[[Tensor, Tensor], Tensor]


def autocorrelation(series: np.ndarray, lags: int) -> np.ndarray:
    """The mean autocorrelation of many series at lags 0 .. lags - 1.

    Arguments:
        series: (T, ...) one series per trailing index (a grid point, a latent element), at
            regular time steps.
        lags: how many lags, < T.

    Returns:
        r: (lags,) float64 with r[0] = 1: the biased (1 / T) autocovariance of each centred
        series, summed over series, over their summed variance. The biased estimate is
        positive semi-definite, so R_ij = r(|i - j|) is a valid covariance.
    """
    values = np.asarray(series, dtype=np.float64).reshape(len(series), -1)
    if not 0 < lags < len(values):
        raise ValueError(f"lags must be in [1, {len(values)}), got {lags}")
    values = values - values.mean(axis=0)
    covariance = [float((values[lag:] * values[: len(values) - lag]).sum()) for lag in range(lags)]
    return np.asarray(covariance) / covariance[0]


def toeplitz(correlation: Tensor, size: int) -> Tensor:
    """R_ij = r(|i - j|): correlation (L,) with L >= size -> (size, size) float64."""
    index = torch.arange(size)
    return correlation[(index[:, None] - index[None, :]).abs()]


def gain(covariance: Tensor, sigma: Tensor) -> Tensor:
    """R (R + sigma^2 I)^-1, symmetric: covariance (K, K) float64, sigma () -> (K, K) float64."""
    noise = float(sigma) ** 2 * torch.eye(len(covariance), dtype=torch.float64)
    return torch.linalg.solve(covariance + noise, covariance)


def window_denoiser(covariance: Tensor) -> Denoise:
    """The exact denoiser of windows with this covariance: x (B, K), sigma () -> (B, K)."""
    return lambda x, sigma: (x.double() @ gain(covariance, sigma)).to(x.dtype)


def composed_denoiser(covariance: Tensor, overlap: int, stitch: str) -> Denoise:
    """Blankets of the window denoiser, folded back: x (B, T'), sigma () -> (B, T')."""
    blanket_size = len(covariance)

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        blankets = unfold(x, blanket_size, overlap, dim=1).double()  # (N, B, K)
        denoised = fold(blankets @ gain(covariance, sigma), overlap, mode=stitch, dim=1)
        return denoised.to(x.dtype)

    return denoise


def covariance_sampler(run_sampler: str) -> str:
    """The sampler a run's perfect-model penalty is computed with: the run's own where its
    covariance is exact (LINEAR_SAMPLERS), else lms (pc's Langevin corrections and rewind's
    jumps are not modelled)."""
    return run_sampler if run_sampler in LINEAR_SAMPLERS else "lms"


def sample_covariance(
    denoise: Denoise, size: int, schedule: DiffusionSchedule, sampler: str, steps: int
) -> Tensor:
    """The exact covariance (size, size) float64 of a linear sampler's samples."""
    if sampler not in LINEAR_SAMPLERS:
        allowed = ", ".join(LINEAR_SAMPLERS)
        raise ValueError(f"sampler {sampler!r} is not linear; allowed: {allowed}")
    draw = build_sampler(sampler, denoise, schedule, steps)
    if sampler == "ddpm":
        return _ancestral_covariance(denoise, size, schedule, draw.timesteps)
    linear_map = draw(torch.eye(size, dtype=torch.float64)).double().T  # x0 = linear_map @ x1
    alpha_1, sigma_1 = schedule(torch.tensor(1.0, dtype=torch.float64))
    return (alpha_1**2 + sigma_1**2) * linear_map @ linear_map.T


def _ancestral_covariance(
    denoise: Denoise, size: int, schedule: DiffusionSchedule, timesteps: Tensor
) -> Tensor:
    """ddpm's samples' covariance, step by step over `timesteps` (1 -> 0), in VE coordinates."""
    identity = torch.eye(size, dtype=torch.float64)
    times = timesteps.double()
    alpha_1, sigma_1 = schedule(times[0])
    covariance = (1 + (sigma_1 / alpha_1) ** 2) * identity  # x1 / alpha_1
    for t, s in zip(times[:-1], times[1:], strict=True):
        alpha_t, sigma_t = schedule(t)
        alpha_s, sigma_s = schedule(s)
        level_t, level_s = sigma_t / alpha_t, sigma_s / alpha_s
        shrink = (level_s / level_t) ** 2
        gain_t = denoise(identity, level_t).double().T  # D(x) = gain_t @ x
        step = shrink * identity + (1 - shrink) * gain_t
        covariance = step @ covariance @ step.T + level_s**2 * (1 - shrink) * identity
    alpha_0, _ = schedule(times[-1])
    return alpha_0**2 * covariance


@dataclass(frozen=True)
class Moments:
    """Of consecutive states: std = sqrt(mean variance), change = sqrt(mean (x_{t+1} - x_t)^2)."""

    std: float
    change: float

    @classmethod
    def of(cls, covariance: Tensor) -> "Moments":
        """From the covariance (T, T) of T >= 2 consecutive states."""
        variance = covariance.diagonal()
        change = variance[:-1] + variance[1:] - 2 * covariance.diagonal(1)
        return cls(float(variance.mean().sqrt()), float(change.mean().sqrt()))


@dataclass(frozen=True)
class Penalty:
    """Composed vs single windows of the exact window denoiser, and the process's own values."""

    single: Moments
    composed: Moments
    process: Moments

    @property
    def std_ratio(self) -> float:
        """Composed / single std."""
        return self.composed.std / self.single.std

    @property
    def hourly_change_ratio(self) -> float:
        """Composed / single hour-to-hour change."""
        return self.composed.change / self.single.change


def composition_penalty(
    correlation: np.ndarray | Tensor,
    trajectory_size: int,
    blanket_size: int,
    overlap: int,
    schedule: DiffusionSchedule,
    steps: int,
    stitch: str = "symmetric",
    sampler: str = "lms",
) -> Penalty:
    """Composed vs single windows, sampled with the exact window denoiser of `correlation`.

    Arguments:
        correlation: (L,) the autocorrelation r(0 .. L - 1), r(0) = 1, of unit-variance
            states; L must reach the padded trajectory size T'.
        trajectory_size: T.
        blanket_size: K.
        overlap: O.
        schedule: the model's noise schedule.
        steps: the sampler's steps.
        stitch: how blankets are folded back.
        sampler: one of LINEAR_SAMPLERS (the run's own, where it is one of them).

    Returns:
        The moments of the first T composed states, of single windows and of the process.
    """
    correlation = torch.as_tensor(correlation, dtype=torch.float64)
    padded = padded_size(trajectory_size, blanket_size, overlap)
    if len(correlation) < padded:
        raise ValueError(f"the autocorrelation has {len(correlation)} lags; {padded} are needed")
    window = toeplitz(correlation, blanket_size)
    single = sample_covariance(window_denoiser(window), blanket_size, schedule, sampler, steps)
    composed = sample_covariance(
        composed_denoiser(window, overlap, stitch), padded, schedule, sampler, steps
    )[:trajectory_size, :trajectory_size]
    return Penalty(
        single=Moments.of(single),
        composed=Moments.of(composed),
        process=Moments.of(toeplitz(correlation, 2)),
    )

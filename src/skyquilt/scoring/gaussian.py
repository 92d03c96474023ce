"""What blanket composition costs a perfect model, computed exactly on a Gaussian process.

A stationary Gaussian process with autocorrelation r(tau) has, for a window of K consecutive
states, the exact denoiser E[x | x + sigma eps] = R (R + sigma^2 I)^-1 (x + sigma eps) with
R_ij = r(|i - j|). Sampling with that window denoiser is the best any trained blanket model
can do. Two ways of sampling are compared, with the same sampler and steps:

- single windows: one blanket of K states, denoised as a whole;
- composed trajectories: T states covered by blankets of K with overlap O, each blanket
  denoised by the window denoiser and composed by a `Rule`: folded back
  (`skyquilt.sampling.blankets.fold`, "symmetric" or "average"), corrected by a coarse model
  of block means ("two_scale"), both through generation's own `ComposedDenoiser`, or the
  blankets' scores summed minus those of their overlaps ("factor_graph", which needs a model
  of O-state windows too and is studied here only). A coarse model is exact too: block means
  of m states have the correlation `block_correlation`.

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from skyquilt.diffusion.samplers import build_sampler
from skyquilt.diffusion.schedules import DiffusionSchedule
from skyquilt.models.config import ModelConfig, ModelDirectory, read_model_config
from skyquilt.sampling.blankets import STITCH_MODES, blanket_count, padded_size
from skyquilt.sampling.coarse import cover
from skyquilt.sampling.composition import CoarseScale, ComposedDenoiser
from skyquilt.sampling.generation import two_scale_settings

# The samplers whose samples' covariance is computed exactly here (see the module's docstring).
LINEAR_SAMPLERS = ("lms", "ddim", "ddpm")
# The composition rules of the exact study (see `Rule`).
RULES = ("blankets", "factor_graph", "two_scale")
# How two-scale corrections reach the states: generation's, and the exact conditional mean.
STUDY_SPREADS = ("constant", "linear", "conditional")
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


def block_correlation(correlation: Tensor, block: int, lags: int) -> Tensor:
    """The covariance of block means of `block` states at lags 0 .. lags - 1 (in blocks):
    c(k) = mean over a, b < block of r(|k block + a - b|); correlation (L,) with
    L >= lags * block -> (lags,) float64 (c(0) < 1: a block mean varies less than a state)."""
    offsets = torch.arange(block)
    within = offsets[:, None] - offsets[None, :]  # (block, block)
    lag = (torch.arange(lags)[:, None, None] * block + within[None]).abs()
    return correlation[lag].mean(dim=(1, 2))


def gain(covariance: Tensor, sigma: Tensor) -> Tensor:
    """R (R + sigma^2 I)^-1, symmetric: covariance (K, K) float64, sigma () -> (K, K) float64."""
    noise = float(sigma) ** 2 * torch.eye(len(covariance), dtype=torch.float64)
    return torch.linalg.solve(covariance + noise, covariance)


class ExactWindows(nn.Module):
    """The exact denoiser of windows of any length L <= len(correlation) of a stationary
    Gaussian process, as generation calls a blanket denoiser:
    x_t (M, L, 1, 1, 1), sigma (M,), time_features (ignored) -> (M, L, 1, 1, 1) float64.

    The gains are kept per (L, sigma): the samplers ask for the same few again and again.
    """

    def __init__(self, correlation: Tensor):
        super().__init__()
        self.correlation = torch.as_tensor(correlation, dtype=torch.float64)
        self.gains: dict[tuple[int, float], Tensor] = {}

    def gain(self, size: int, sigma: float) -> Tensor:
        """(size, size) float64, see `gain`."""
        key = (size, sigma)
        if key not in self.gains:
            self.gains[key] = gain(toeplitz(self.correlation, size), torch.tensor(sigma))
        return self.gains[key]

    def forward(self, x_t: Tensor, sigma: Tensor, time_features: Tensor) -> Tensor:
        """E[x | x_t] of each window at its noise level (see the class)."""
        windows = x_t.double().flatten(1)  # (M, L)
        if bool((sigma == sigma[0]).all()):  # as the samplers call it: one noise level for all
            return (windows @ self.gain(windows.shape[1], float(sigma[0]))).view(x_t.shape)
        denoised = torch.empty_like(windows)
        for level in sigma.unique().tolist():
            rows = sigma == level
            denoised[rows] = windows[rows] @ self.gain(windows.shape[1], level)
        return denoised.view(x_t.shape)


def window_denoiser(covariance: Tensor) -> Denoise:
    """The exact denoiser of windows with this covariance: x (B, K), sigma () -> (B, K)."""
    return lambda x, sigma: (x.double() @ gain(covariance, sigma)).to(x.dtype)


@dataclass(frozen=True)
class Rule:
    """A composition rule of the exact study.

    name: "blankets" (blankets folded back with `stitch`: generation's `generation.stitch`),
        "two_scale" (blankets folded back with `stitch`, then corrected at noise levels >=
        `until_sigma` by a coarse model of block means of `block` states over windows of
        `coarse_blanket` blocks overlapping by at least `coarse_overlap`, the correction per
        block spread to the states by `spread`: generation's `generation.composition:
        two_scale`), or "factor_graph" (the sum of the blankets' scores minus the scores of
        their O-state overlaps, as a junction tree factorises a Markov chain; needs a model of
        O-state windows; the study's only).
    spread: "constant", "linear", or "conditional" (the exact conditional mean of the states
        given the block means; the study's only).
    """

    name: str = "blankets"
    stitch: str = "symmetric"
    block: int = 8
    coarse_blanket: int = 48
    coarse_overlap: int = 24
    spread: str = "linear"
    until_sigma: float = 0.3

    def __post_init__(self) -> None:
        for key, value, allowed in (
            ("name", self.name, RULES),
            ("stitch", self.stitch, STITCH_MODES),
            ("spread", self.spread, STUDY_SPREADS),
        ):
            if value not in allowed:
                raise ValueError(f"rule {key} {value!r} is unknown; allowed: {', '.join(allowed)}")

    @property
    def label(self) -> str:
        """A short name: "symmetric", "factor_graph", "two_scale m=8 48x24 linear >=1"."""
        if self.name == "blankets":
            return self.stitch
        if self.name == "factor_graph":
            return self.name
        return (
            f"two_scale m={self.block} {self.coarse_blanket}x{self.coarse_overlap} "
            f"{self.spread} >={self.until_sigma:g}"
        )


def run_rule(
    composition: str, stitch: str, model_path: Path, model: ModelConfig, padded: int
) -> Rule:
    """A run's composition of T' = `padded` states as the exact study knows it: blankets
    folded back with `stitch`, corrected as generation does when it composes two_scale (with
    the coarse model that the model at `model_path`, config `model`, declares;
    `sampling.generation.two_scale_settings`) unless T' has too few blocks for it."""
    if composition != "two_scale":
        return Rule(stitch=stitch)
    coarse_file = ModelDirectory(model_path).coarse_path(model) / "config.yaml"
    coarse = two_scale_settings(read_model_config(coarse_file), model)
    if padded // coarse["block"] < coarse["min_blanket_size"]:
        return Rule(stitch=stitch)
    return Rule(
        "two_scale", stitch, coarse["block"], coarse["blanket_size"], coarse["overlap"],
        coarse["spread"], coarse["until_sigma"],
    )  # fmt: skip


def composed_denoiser(covariance: Tensor, overlap: int, stitch: str) -> Denoise:
    """Blankets of the window denoiser, folded back: x (B, T'), sigma () -> (B, T')."""
    correlation = covariance[0]
    return lambda x, sigma: rule_denoiser(
        correlation, x.shape[1], len(covariance), overlap, Rule(stitch=stitch)
    )(x, sigma)


def rule_denoiser(
    correlation: Tensor, padded: int, blanket_size: int, overlap: int, rule: Rule
) -> Denoise:
    """The exact composed denoiser of `rule` for T' = `padded` states: x (B, T'), sigma () ->
    (B, T') float64. Blankets and two-scale go through generation's ComposedDenoiser, with
    `ExactWindows` for the blanket (and the coarse) model."""
    correlation = torch.as_tensor(correlation, dtype=torch.float64)
    if rule.name == "factor_graph":
        return _factor_graph(ExactWindows(correlation), blanket_size, overlap)
    coarse = None
    if rule.name == "two_scale":
        blocks = padded // rule.block
        coarse = CoarseScale(
            ExactWindows(block_correlation(correlation, rule.block, blocks)),
            rule.block,
            rule.coarse_blanket,
            rule.coarse_overlap,
            _conditional_spread(correlation, padded, rule.block)
            if rule.spread == "conditional"
            else rule.spread,
            rule.until_sigma,
        )
    composed = ComposedDenoiser(
        ExactWindows(correlation),
        torch.zeros(padded, 0, dtype=torch.float64),  # the exact windows need no calendar
        blanket_size,
        overlap,
        stitch=rule.stitch,
        coarse=coarse,
    )
    return lambda x, sigma: composed(x.double()[..., None, None, None], sigma)[..., 0, 0, 0]


def _conditional_spread(correlation: Tensor, padded: int, block: int) -> Callable:
    """The exact conditional mean of T' states given their block means, as a spread:
    (B, n, 1, 1, 1) -> (B, n m, 1, 1, 1) with the matrix R P^T (P R P^T)^-1."""
    covariance = toeplitz(correlation, padded)
    means = torch.kron(torch.eye(padded // block, dtype=torch.float64), torch.ones(1, block))
    means = means / block  # P: (n, T')
    across = covariance @ means.T  # (T', n)
    matrix = torch.linalg.solve(means @ across, across.T).T  # (T', n)
    return lambda values: (values.flatten(1) @ matrix.T).view(len(values), padded, 1, 1, 1)


def _factor_graph(windows: ExactWindows, blanket_size: int, overlap: int) -> Denoise:
    """D(x) = x + sum over blankets of (D_K(x_i) - x_i) - sum over the overlaps of
    consecutive blankets of (D_O(x_j) - x_j): x (B, T'), sigma () -> (B, T') float64."""
    stride = blanket_size - overlap

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        x = x.double()
        count = (x.shape[1] - blanket_size) // stride + 1
        denoised = x.clone()
        # The blankets start at 0, S, ..., the overlaps at S, 2 S, ... (all windows at once).
        for size, first, sign in ((blanket_size, 0, 1), (overlap, stride, -1)):
            step = windows.gain(size, float(sigma)) - torch.eye(size, dtype=torch.float64)
            starts = torch.arange(first, (count - 1) * stride + 1, stride)
            index = (starts[:, None] + torch.arange(size)).flatten()  # (W * size,)
            parts = x[:, index].unflatten(1, (len(starts), size)) @ step  # (B, W, size)
            denoised.index_add_(1, index, parts.flatten(1), alpha=sign)
        return denoised

    return denoise


def work_per_step(
    rule: Rule, padded: int, blanket_size: int, overlap: int, noise_levels: Tensor
) -> float:
    """States the rule scores per sampler step, over those of symmetric blankets (N K), on
    average over the steps' noise levels (steps,): the coarse windows count only at the
    steps at or above `until_sigma`, the overlaps of factor_graph at every step."""
    count = blanket_count(padded, blanket_size, overlap)
    fine = count * blanket_size
    if rule.name == "factor_graph":
        return (fine + (count - 1) * overlap) / fine
    if rule.name == "blankets":
        return 1.0
    window, starts = cover(padded // rule.block, rule.coarse_blanket, rule.coarse_overlap)
    active = float((noise_levels >= rule.until_sigma).double().mean())
    return (fine + active * window * len(starts)) / fine


def covariance_sampler(run_sampler: str) -> str:
    """The sampler a run's perfect-model penalty is computed with: the run's own where its
    covariance is exact (LINEAR_SAMPLERS), else lms (pc's Langevin corrections and rewind's
    jumps are not modelled)."""
    return run_sampler if run_sampler in LINEAR_SAMPLERS else "lms"


def noise_levels(schedule: DiffusionSchedule, sampler: str, steps: int) -> Tensor:
    """(steps,) the VE noise levels at which the sampler calls the denoiser, first to last."""
    draw = build_sampler(sampler, lambda x, sigma: x, schedule, steps)
    return schedule.sigma(draw.timesteps.double()[:-1])


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
    """ddpm's samples' covariance, step by step over `timesteps` (1 -> 0), in VE coordinates.

    With M = a I + b G (a = rho^2, b = 1 - a) and W = denoise(C) = C G^T, M C M^T is
    a^2 C + a b (W + W^T) + b^2 denoise(W^T): two calls of the denoiser on (size, size)
    instead of products of dense (size, size) matrices, which cost size^3.
    """
    identity = torch.eye(size, dtype=torch.float64)
    times = timesteps.double()
    alpha_1, sigma_1 = schedule(times[0])
    covariance = (1 + (sigma_1 / alpha_1) ** 2) * identity  # x1 / alpha_1
    for t, s in zip(times[:-1], times[1:], strict=True):
        alpha_t, sigma_t = schedule(t)
        alpha_s, sigma_s = schedule(s)
        level_t, level_s = sigma_t / alpha_t, sigma_s / alpha_s
        shrink = (level_s / level_t) ** 2
        spread = denoise(covariance, level_t).double()  # C G^T
        twice = denoise(spread.T.contiguous(), level_t).double()  # G C G^T
        covariance = (
            shrink**2 * covariance
            + shrink * (1 - shrink) * (spread + spread.T)
            + (1 - shrink) ** 2 * (twice + twice.T) / 2
            + level_s**2 * (1 - shrink) * identity
        )
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


def lag_correlation(covariance: Tensor, lag: int) -> float:
    """The mean covariance of states `lag` apart over their mean variance, from the
    covariance (T, T) of T > lag consecutive states."""
    return float(covariance.diagonal(lag).mean() / covariance.diagonal().mean())


@dataclass(frozen=True)
class Penalty:
    """Composed vs single windows of the exact window denoiser, and the process's own values.

    lags: lag (states) -> (composed, process) correlation, for the lags shorter than T.
    work: states scored per step over symmetric blankets', see `work_per_step`.
    """

    single: Moments
    composed: Moments
    process: Moments
    lags: dict[int, tuple[float, float]] = field(default_factory=dict)
    work: float = 1.0

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
    rule: Rule | None = None,
    lags: tuple[int, ...] = (24, 48, 96),
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
        stitch: how blankets are folded back, when `rule` is None.
        sampler: one of LINEAR_SAMPLERS (the run's own, where it is one of them).
        rule: how the blankets compose; blankets folded back with `stitch` when None.
        lags: the lags (states) whose correlations are compared, those < T.

    Returns:
        The moments of the first T composed states, of single windows and of the process,
        the lag correlations and the work per step.
    """
    rule = rule or Rule(stitch=stitch)
    correlation = torch.as_tensor(correlation, dtype=torch.float64)
    padded = padded_size(trajectory_size, blanket_size, overlap)
    if len(correlation) < padded:
        raise ValueError(f"the autocorrelation has {len(correlation)} lags; {padded} are needed")
    if rule.name == "two_scale" and (blanket_size % rule.block or overlap % rule.block):
        raise ValueError(f"blocks of {rule.block} must divide K = {blanket_size} and O = {overlap}")
    window = toeplitz(correlation, blanket_size)
    single = sample_covariance(window_denoiser(window), blanket_size, schedule, sampler, steps)
    denoise = rule_denoiser(correlation, padded, blanket_size, overlap, rule)
    composed = sample_covariance(denoise, padded, schedule, sampler, steps)
    composed = composed[:trajectory_size, :trajectory_size]
    levels = noise_levels(schedule, sampler, steps)
    return Penalty(
        single=Moments.of(single),
        composed=Moments.of(composed),
        process=Moments.of(toeplitz(correlation, 2)),
        lags={
            lag: (lag_correlation(composed, lag), float(correlation[lag]))
            for lag in lags
            if lag < trajectory_size
        },
        work=work_per_step(rule, padded, blanket_size, overlap, levels),
    )

"""Composition with an exact window denoiser (skyquilt.scoring.gaussian), on Gaussian AR(1).

x_{t+1} = rho x_t + sqrt(1 - rho^2) w_t: stationary variance 1, r(tau) = rho^tau, correlation
time ~ 1 / (1 - rho) steps. The exact window denoiser is the best a trained blanket model can
be, so these tests separate what composition costs from what training costs:

- when blankets span the correlation time, composed trajectories have the std and the hourly
  change of single windows (exactly, and in 8192 sampled trajectories within sampling error);
- when the process stays correlated longer than a blanket, composition loses variance and
  adds hour-to-hour change, less and less as the blanket grows.
"""

import math

import numpy as np
import pytest
import torch

from skyquilt.diffusion.samplers import build_sampler, init_noise
from skyquilt.diffusion.schedules import build_schedule
from skyquilt.sampling.blankets import padded_size
from skyquilt.scoring.gaussian import (
    Moments,
    autocorrelation,
    composed_denoiser,
    composition_penalty,
    covariance_sampler,
    toeplitz,
    window_denoiser,
)

SCHEDULE = build_schedule("rectified", 1e-3, 1e3)
STEPS = 64
TRAJECTORY_SIZE = 64
SAMPLES = 8192


def ar1(rho: float, lags: int = 128) -> np.ndarray:
    return rho ** np.arange(lags)


def sampled_moments(
    denoise, size: int, trim: int, seed: int, sampler: str = "lms"
) -> tuple[float, float]:
    """(mean variance, mean squared hourly change) of SAMPLES trajectories drawn with
    `sampler` (lms: deterministic; ddpm: ancestral, fresh noise at every step)."""
    sampler = build_sampler(sampler, denoise, SCHEDULE, STEPS)
    torch.manual_seed(seed)
    x = sampler(init_noise(SCHEDULE, (SAMPLES, size)).double())[:, :trim]
    variance = x.var(dim=0).mean()
    change = x.diff(dim=1).square().mean()
    return float(variance), float(change)


@pytest.mark.parametrize(("rho", "blanket_size", "overlap"), [(0.5, 8, 4), (0.9, 32, 16)])
def test_blankets_spanning_the_correlation_time_compose_without_loss(rho, blanket_size, overlap):
    """Exact covariances, no sampling error: composed / single std and hourly change are 1
    to 0.5 %. The residual is the composition's own bias (0.1 % here), well inside that."""
    penalty = composition_penalty(ar1(rho), TRAJECTORY_SIZE, blanket_size, overlap, SCHEDULE, STEPS)
    assert penalty.std_ratio == pytest.approx(1, abs=5e-3)
    assert penalty.hourly_change_ratio == pytest.approx(1, abs=5e-3)
    # ...and both match the process itself (the sampler's discretisation: < 1 %).
    assert penalty.composed.std == pytest.approx(penalty.process.std, rel=1e-2)
    assert penalty.composed.change == pytest.approx(penalty.process.change, rel=1e-2)


@pytest.mark.parametrize("sampler", ["lms", "ddpm"])
def test_sampled_composed_trajectories_match_sampled_single_windows(sampler):
    """8192 composed trajectories (rho = 0.5, K = 8, O = 4, T = 64) vs 8192 single windows,
    both drawn from noise with the same sampler: their variance and mean squared hourly change
    agree within 5 standard errors of the difference. The deterministic and the stochastic
    sampler alike: ddpm's own discretisation error (below) is the same for both.

    SE of a mean variance: at most sqrt(2 / (n - 1)) (the mean of dependent estimates has at
    most the SE of one); the same for the mean squared change, whose scale is 2 (1 - rho).
    """
    rho, blanket_size, overlap = 0.5, 8, 4
    window = toeplitz(torch.as_tensor(ar1(rho)), blanket_size)
    padded = padded_size(TRAJECTORY_SIZE, blanket_size, overlap)
    composed = sampled_moments(
        composed_denoiser(window, overlap, "symmetric"), padded, TRAJECTORY_SIZE, 0, sampler
    )
    single = sampled_moments(window_denoiser(window), blanket_size, blanket_size, 1, sampler)
    se = math.sqrt(2 / (SAMPLES - 1))
    assert abs(composed[0] - single[0]) <= 5 * math.sqrt(2) * se
    assert abs(composed[1] - single[1]) <= 5 * math.sqrt(2) * se * 2 * (1 - rho)


@pytest.mark.parametrize("sampler", ["lms", "ddpm"])
def test_exact_moments_equal_those_of_sampled_trajectories(sampler):
    """The exact covariance is what sampling converges to: rho = 0.97, K = 8 (a case with a
    large composition penalty) within 5 standard errors, for the deterministic sampler (the
    sampler run on the identity) and the ancestral one (its covariance stepped through the
    noise levels, an independent computation of what the sampler's own steps do)."""
    rho, blanket_size, overlap = 0.97, 8, 4
    window = toeplitz(torch.as_tensor(ar1(rho)), blanket_size)
    penalty = composition_penalty(
        ar1(rho), TRAJECTORY_SIZE, blanket_size, overlap, SCHEDULE, STEPS, sampler=sampler
    )
    assert penalty.std_ratio < 0.95  # far from 1: the comparison below can tell a wrong model
    padded = padded_size(TRAJECTORY_SIZE, blanket_size, overlap)
    variance, change = sampled_moments(
        composed_denoiser(window, overlap, "symmetric"), padded, TRAJECTORY_SIZE, 2, sampler
    )
    se = math.sqrt(2 / (SAMPLES - 1))
    assert abs(variance - penalty.composed.std**2) <= 5 * se
    assert abs(change - penalty.composed.change**2) <= 5 * se * penalty.composed.change**2


def test_composition_penalty_when_correlation_outlasts_the_blanket():
    """rho = 0.97 (correlation time ~33 steps): blankets of 8 lose > 10 % of the std and add
    > 10 % hourly change; blankets of 16 and 32 lose less and less."""
    penalties = [
        composition_penalty(ar1(0.97), TRAJECTORY_SIZE, size, size // 2, SCHEDULE, STEPS)
        for size in (8, 16, 32)
    ]
    assert penalties[0].std_ratio < 0.9
    assert penalties[0].hourly_change_ratio > 1.1
    stds = [penalty.std_ratio for penalty in penalties]
    changes = [penalty.hourly_change_ratio for penalty in penalties]
    assert stds == sorted(stds) and changes == sorted(changes, reverse=True)
    assert abs(stds[-1] - 1) < 0.05 and abs(changes[-1] - 1) < 0.05


def test_autocorrelation_of_an_ar1_series():
    """4 series of 20000 AR(1) steps: r(tau) = rho^tau within 0.03 (SE ~ 1 / sqrt(80000))."""
    rho, generator = 0.8, np.random.default_rng(0)
    series = np.zeros((20000, 4))
    noise = generator.standard_normal(series.shape) * math.sqrt(1 - rho**2)
    for step in range(1, len(series)):
        series[step] = rho * series[step - 1] + noise[step]
    correlation = autocorrelation(series, 6)
    assert correlation[0] == 1
    np.testing.assert_allclose(correlation, rho ** np.arange(6), atol=0.03)


def test_moments_of_a_known_covariance():
    covariance = torch.tensor([[4.0, 2.0], [2.0, 4.0]], dtype=torch.float64)
    moments = Moments.of(covariance)
    assert moments.std == pytest.approx(2.0)
    assert moments.change == pytest.approx(2.0)  # E[(x1 - x0)^2] = 4 + 4 - 2 * 2


def test_nonlinear_samplers_and_short_autocorrelations_are_refused():
    with pytest.raises(ValueError, match="not linear"):
        composition_penalty(ar1(0.5), 16, 8, 4, SCHEDULE, 8, sampler="pc")
    with pytest.raises(ValueError, match="lags"):
        composition_penalty(ar1(0.5, lags=10), 16, 8, 4, SCHEDULE, 8)


def test_a_run_is_judged_with_its_own_sampler_where_its_covariance_is_exact():
    assert [covariance_sampler(name) for name in ("lms", "ddim", "ddpm")] == ["lms", "ddim", "ddpm"]
    assert [covariance_sampler(name) for name in ("pc", "rewind")] == ["lms", "lms"]

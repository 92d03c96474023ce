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
    Rule,
    autocorrelation,
    block_correlation,
    composed_denoiser,
    composition_penalty,
    covariance_sampler,
    rule_denoiser,
    sample_covariance,
    toeplitz,
    window_denoiser,
    work_per_step,
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


# Two-scale composition (a coarse model of block means corrects the blankets' slow part) and
# the factor-graph rule, on the case above where blankets lose most: rho = 0.97, K = 8.
TWO_SCALE = Rule("two_scale", block=4, coarse_blanket=16, coarse_overlap=8)


@pytest.mark.parametrize("sampler", ["lms", "ddpm"])
def test_two_scale_composition_keeps_what_blankets_alone_lose(sampler):
    """rho = 0.97, K = 8, O = 4, T = 64: symmetric blankets keep < 0.9 of the std, add > 10 %
    hourly change and keep nothing of the correlation 24 states apart (0.48); corrected by the
    exact model of 4-state block means over the whole trajectory (16 blocks) down to sigma =
    0.3, composed trajectories keep the single windows' std to 1 % and their hourly change to
    3 % (measured: 1.004 / 1.029 with lms, 0.994 / 1.015 with ddpm), and that correlation to
    0.025 (0.462 and 0.466)."""
    penalties = {
        rule.name: composition_penalty(
            ar1(0.97), TRAJECTORY_SIZE, 8, 4, SCHEDULE, STEPS, sampler=sampler, rule=rule
        )
        for rule in (Rule(), TWO_SCALE)
    }
    assert penalties["blankets"].std_ratio < 0.9
    assert penalties["blankets"].hourly_change_ratio > 1.1
    two_scale = penalties["two_scale"]
    assert two_scale.std_ratio == pytest.approx(1, abs=0.01)
    assert two_scale.hourly_change_ratio == pytest.approx(1, abs=0.03)
    composed, truth = two_scale.lags[24]
    assert composed == pytest.approx(truth, abs=0.025)
    assert penalties["blankets"].lags[24][0] < 0.01


@pytest.mark.parametrize("sampler", ["lms", "ddpm"])
def test_exact_two_scale_moments_equal_those_of_sampled_trajectories(sampler):
    """The exact covariance of two-scale composition is what 8192 trajectories sampled with
    it (through generation's ComposedDenoiser) converge to, within 5 standard errors."""
    correlation = torch.as_tensor(ar1(0.97))
    padded = padded_size(TRAJECTORY_SIZE, 8, 4)
    penalty = composition_penalty(
        ar1(0.97), TRAJECTORY_SIZE, 8, 4, SCHEDULE, STEPS, sampler=sampler, rule=TWO_SCALE
    )
    denoise = rule_denoiser(correlation, padded, 8, 4, TWO_SCALE)
    variance, change = sampled_moments(denoise, padded, TRAJECTORY_SIZE, 3, sampler)
    se = math.sqrt(2 / (SAMPLES - 1))
    assert abs(variance - penalty.composed.std**2) <= 5 * se
    assert abs(change - penalty.composed.change**2) <= 5 * se * penalty.composed.change**2


def test_ancestral_covariance_is_the_dense_recursion():
    """ddpm's covariance, stepped with two denoiser calls per step, equals the recursion
    C_s = M C_t M^T + s_s^2 (1 - rho^2) I with the dense step matrix M, to 1e-10."""
    padded = padded_size(24, 8, 4)
    denoise = rule_denoiser(torch.as_tensor(ar1(0.9)), padded, 8, 4, TWO_SCALE)
    timesteps = build_sampler("ddpm", denoise, SCHEDULE, 16).timesteps.double()
    identity = torch.eye(padded, dtype=torch.float64)
    alpha, sigma = SCHEDULE(timesteps[0])
    dense = (1 + (sigma / alpha) ** 2) * identity
    for t, s in zip(timesteps[:-1], timesteps[1:], strict=True):
        level_t, level_s = (SCHEDULE.sigma(time) for time in (t, s))
        shrink = (level_s / level_t) ** 2
        step = shrink * identity + (1 - shrink) * denoise(identity, level_t).T
        dense = step @ dense @ step.T + level_s**2 * (1 - shrink) * identity
    dense = SCHEDULE(timesteps[-1])[0] ** 2 * dense
    exact = sample_covariance(denoise, padded, SCHEDULE, "ddpm", 16)
    torch.testing.assert_close(exact, dense, rtol=1e-10, atol=1e-10)


def test_factor_graph_composition_loses_less_than_symmetric_blankets():
    """The sum of the blankets' scores minus their overlaps' (exact O-state marginals) keeps
    more of the std than symmetric stitching, at 1 + (N - 1) O / (N K) the states scored."""
    symmetric, factor_graph = (
        composition_penalty(ar1(0.97), TRAJECTORY_SIZE, 8, 4, SCHEDULE, STEPS, rule=rule)
        for rule in (Rule(), Rule("factor_graph"))
    )
    assert factor_graph.std_ratio > symmetric.std_ratio + 0.03
    count = 15  # blankets of T' = 64
    assert factor_graph.work == pytest.approx(1 + (count - 1) * 4 / (count * 8))
    assert symmetric.work == 1


def test_two_scale_work_counts_the_coarse_windows_at_the_steps_they_run():
    """T' = 64: 15 blankets of 8 states and one coarse window of 16 blocks, scored at the
    steps whose noise level is >= until_sigma."""
    levels = torch.tensor([100.0, 10.0, 1.0, 0.1])
    work = work_per_step(TWO_SCALE, 64, 8, 4, levels)
    assert work == pytest.approx(1 + 0.75 * 16 / (15 * 8))
    with pytest.raises(ValueError, match="spread 'cubic' is unknown"):
        Rule("two_scale", spread="cubic")


def test_block_correlation_of_ar1_block_means():
    """Means of 2 AR(1) states: variance (1 + rho) / 2 and lag-1 covariance
    (rho + 2 rho^2 + rho^3) / 4."""
    rho = 0.5
    covariance = block_correlation(torch.as_tensor(ar1(rho)), 2, 3)
    torch.testing.assert_close(
        covariance,
        torch.tensor(
            [(1 + rho) / 2, (rho + 2 * rho**2 + rho**3) / 4, (rho**3 + 2 * rho**4 + rho**5) / 4],
            dtype=torch.float64,
        ),
    )

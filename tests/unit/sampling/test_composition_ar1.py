"""Blanket composition proven on a Gaussian AR(1) trajectory.

x_{t+1} = rho x_t + sqrt(1 - rho^2) w_t has stationary variance 1 and covariance
Sigma_ij = rho^|i - j|. For a window of K states the exact denoiser is
E[x | x + sigma eps] = Sigma (Sigma + sigma^2 I)^-1 (x + sigma eps). The composed denoiser
unfolds the noisy trajectory into blankets, denoises each with that window denoiser and
folds them back (skyquilt.sampling.blankets); the lms sampler then draws whole trajectories.

Everything is linear, so the deterministic lms sampler maps x1 to x0 = A x1 and the sampled
trajectories are exactly N(0, c^2 A A^T) with c^2 = alpha_1^2 + sigma_1^2: running the sampler
on the identity gives their covariance with no sampling error (`output_covariance`).

What it shows, for K = 8, T = 64, rho = 0.9, 64 lms steps:
- the exact denoiser of the whole trajectory reproduces var 1 and lag-1 rho (to 0.015, 0.001);
- the blanket composition is an approximation, biased because the correlation length
  1 / (1 - rho) = 10 exceeds the blanket: it drops what states outside a blanket say about
  those inside, most at high noise, which lowers the variance (~0.88) and the lag-1
  correlation, most at seams. With rho = 0.5 the same composition is exact to 0.005;
- symmetric stitching is closer to rho at seams than average stitching;
- two-scale composition (the exact model of 4-state block means corrects the slow part of
  the composed estimate) removes most of the blanket bias: the variance and the lag-1
  correlation inside blankets as the process's, at seams 0.011 low (symmetric: 0.042).
"""

import math

import pytest
import torch

from skyquilt.diffusion.samplers import build_sampler, init_noise
from skyquilt.diffusion.schedules import build_schedule
from skyquilt.sampling.blankets import _keep_ranges, blanket_count, fold, padded_size, unfold
from skyquilt.scoring.gaussian import Rule, rule_denoiser

BLANKET_SIZE, TRAJECTORY_SIZE, RHO = 8, 64, 0.9
STEPS = 64
SAMPLES = 8192
SCHEDULE = build_schedule("rectified", 1e-3, 1e3)

# Composition bias of 64-step lms trajectories (from `output_covariance`, no sampling error),
# as (interior lag-1, seam lag-1, variance): the measured |value - target| of the mean over
# the pairs or states of each class, rounded up by 0.01. Measured means (rho = 0.9):
#   symmetric O=4: interior 0.880, seams 0.858, variance 0.881
#   symmetric O=2: interior 0.879, seams 0.797, variance 0.877
#   average   O=4: interior 0.882, seams 0.649, variance 0.830
#   average   O=2: interior 0.882, seams 0.779, variance 0.846
# With 512 steps they move by less than 0.005, so they are the composition's, not the
# sampler's. The exact whole-trajectory denoiser gives 0.899 and 0.990 at 64 steps.
BIAS_BOUNDS = {
    ("symmetric", 4): (0.03, 0.05, 0.13),
    ("symmetric", 2): (0.03, 0.11, 0.13),
    ("average", 4): (0.03, 0.26, 0.18),
    ("average", 2): (0.03, 0.13, 0.16),
}


def ar1_covariance(size: int, rho: float) -> torch.Tensor:
    """Sigma_ij = rho^|i - j|: (size, size) float64."""
    index = torch.arange(size, dtype=torch.float64)
    return rho ** (index[:, None] - index[None, :]).abs()


def gain(covariance: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Sigma (Sigma + sigma^2 I)^-1: (K, K) float32, symmetric."""
    noise = float(sigma) ** 2 * torch.eye(len(covariance), dtype=torch.float64)
    return torch.linalg.solve(covariance + noise, covariance).float()


def whole_trajectory_denoiser(length: int, rho: float = RHO):
    covariance = ar1_covariance(length, rho)
    return lambda x, sigma: x @ gain(covariance, sigma)


def composed_denoiser(overlap: int, mode: str, rho: float = RHO):
    """Denoise x: (B, T') blanket by blanket with the exact window denoiser and fold back."""
    covariance = ar1_covariance(BLANKET_SIZE, rho)

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        blankets = unfold(x, BLANKET_SIZE, overlap, dim=1)  # (N, B, K)
        return fold(blankets @ gain(covariance, sigma), overlap, mode=mode, dim=1)

    return denoise


def output_covariance(denoise, length: int) -> torch.Tensor:
    """Exact covariance (T', T') of 64-step lms samples, from the sampler's linear map."""
    sampler = build_sampler("lms", denoise, SCHEDULE, STEPS, {})
    linear_map = sampler(torch.eye(length)).double().T  # x0 = linear_map @ x1
    alpha_1, sigma_1 = SCHEDULE(torch.tensor(1.0, dtype=torch.float64))
    return (alpha_1**2 + sigma_1**2) * linear_map @ linear_map.T


def sample_covariance(denoise, length: int, seed: int = 0) -> torch.Tensor:
    """Empirical covariance (T', T') of SAMPLES trajectories drawn with 64 lms steps."""
    sampler = build_sampler("lms", denoise, SCHEDULE, STEPS, {})
    torch.manual_seed(seed)
    x = sampler(init_noise(SCHEDULE, (SAMPLES, length))).double()
    return torch.cov(x.T)


def lag1(covariance: torch.Tensor) -> torch.Tensor:
    """Correlation of states (j, j + 1) for every j: (T' - 1,)."""
    variance = covariance.diagonal()
    return covariance.diagonal(1) / (variance[:-1] * variance[1:]).sqrt()


def seam_pairs(length: int, overlap: int, mode: str) -> list[int]:
    """Pairs (j, j + 1), named by j, where the blankets behind a state change.

    symmetric: where the kept source blanket changes (boundaries of the kept ranges);
    average: where a blanket starts or ends, i.e. the set of averaged blankets changes.
    """
    stride = BLANKET_SIZE - overlap
    count = blanket_count(length, BLANKET_SIZE, overlap)
    if mode == "symmetric":
        ranges = _keep_ranges(count, BLANKET_SIZE, overlap)
        starts = {index * stride + start for index, (start, _) in enumerate(ranges) if index}
    else:
        starts = {index * stride for index in range(1, count)}
        starts |= {index * stride + BLANKET_SIZE for index in range(count - 1)}
    return sorted(start - 1 for start in starts)


def class_means(covariance: torch.Tensor, overlap: int, mode: str) -> tuple[float, float, float]:
    """(mean interior lag-1, mean seam lag-1, mean variance) of a trajectory covariance."""
    correlation = lag1(covariance)
    seams = seam_pairs(len(covariance), overlap, mode)
    interior = [j for j in range(len(correlation)) if j not in seams]
    return (
        correlation[interior].mean().item(),
        correlation[seams].mean().item(),
        covariance.diagonal().mean().item(),
    )


def test_seams_of_symmetric_stitching_are_kept_range_boundaries():
    # K = 8, O = 4: blanket i keeps [4i + 2, 4i + 6), so sources change at 6, 10, ..., 58.
    assert seam_pairs(64, 4, "symmetric") == list(range(5, 58, 4))


@pytest.mark.parametrize("overlap", [4, 2])
def test_whole_trajectory_denoiser_reproduces_ar1(overlap):
    """The harness itself: with the exact denoiser of the whole trajectory, 64 lms steps
    give lag-1 rho to 0.001 and variance 1 to 0.015 (lms discretisation: 0.990 at worst)."""
    length = padded_size(TRAJECTORY_SIZE, BLANKET_SIZE, overlap)
    covariance = output_covariance(whole_trajectory_denoiser(length), length)
    assert (lag1(covariance) - RHO).abs().max() < 1e-3
    assert (covariance.diagonal() - 1).abs().max() < 1.5e-2


@pytest.mark.parametrize(("mode", "overlap"), list(BIAS_BOUNDS))
def test_sampled_blanket_trajectories_keep_lag1_and_variance(mode, overlap):
    """8192 trajectories drawn with the composed denoiser: lag-1 correlation inside blankets
    and across seams, and the variance, lie within the composition bias + 5 standard errors.

    SE of a correlation estimate: (1 - r^2) / sqrt(n); SE of a variance estimate:
    v sqrt(2 / (n - 1)). A class mean is an average of dependent estimates, whose SE is at
    most the largest single SE, used here as a conservative bound (r <= 0.9, v <= 1).
    """
    length = padded_size(TRAJECTORY_SIZE, BLANKET_SIZE, overlap)
    interior, seams, variance = class_means(
        sample_covariance(composed_denoiser(overlap, mode), length), overlap, mode
    )
    se_correlation = (1 - 0.6**2) / math.sqrt(SAMPLES)  # smallest r seen is 0.62
    se_variance = math.sqrt(2 / (SAMPLES - 1))
    interior_bound, seam_bound, variance_bound = BIAS_BOUNDS[(mode, overlap)]
    assert abs(interior - RHO) <= interior_bound + 5 * se_correlation, interior
    assert abs(seams - RHO) <= seam_bound + 5 * se_correlation, seams
    assert abs(variance - 1) <= variance_bound + 5 * se_variance, variance


@pytest.mark.parametrize(("mode", "overlap"), list(BIAS_BOUNDS))
def test_composition_bias_is_within_its_measured_bound(mode, overlap):
    """The same check on the exact output covariance, with no sampling error at all."""
    length = padded_size(TRAJECTORY_SIZE, BLANKET_SIZE, overlap)
    covariance = output_covariance(composed_denoiser(overlap, mode), length)
    interior, seams, variance = class_means(covariance, overlap, mode)
    interior_bound, seam_bound, variance_bound = BIAS_BOUNDS[(mode, overlap)]
    assert abs(interior - RHO) <= interior_bound
    assert abs(seams - RHO) <= seam_bound
    assert abs(variance - 1) <= variance_bound


def test_composition_is_exact_when_correlations_are_short():
    """With rho = 0.5 (correlation length 2 < K = 8) symmetric blankets lose almost nothing:
    every lag-1 correlation is within 0.005 of rho and every variance within 0.01 of 1.
    So the rho = 0.9 bias is the blanket approximation, not the stitching code."""
    length = padded_size(TRAJECTORY_SIZE, BLANKET_SIZE, 4)
    covariance = output_covariance(composed_denoiser(4, "symmetric", rho=0.5), length)
    assert (lag1(covariance) - 0.5).abs().max() < 5e-3
    assert (covariance.diagonal() - 1).abs().max() < 1e-2


@pytest.mark.parametrize("overlap", [4, 2])
def test_symmetric_stitching_is_closer_to_rho_at_seams_than_average(overlap):
    """Compared on each mode's own seams and on the worst pair of the whole trajectory."""
    length = padded_size(TRAJECTORY_SIZE, BLANKET_SIZE, overlap)
    symmetric = output_covariance(composed_denoiser(overlap, "symmetric"), length)
    average = output_covariance(composed_denoiser(overlap, "average"), length)
    _, symmetric_seams, _ = class_means(symmetric, overlap, "symmetric")
    _, average_seams, _ = class_means(average, overlap, "average")
    assert abs(symmetric_seams - RHO) < abs(average_seams - RHO)
    assert lag1(symmetric).min() > lag1(average).min()


def two_scale_denoiser(overlap: int, rho: float = RHO):
    """The composed denoiser corrected by the exact denoiser of AR(1) block means of 4 states
    over windows of up to 16 blocks (two-scale composition, generation's ComposedDenoiser)."""
    length = padded_size(TRAJECTORY_SIZE, BLANKET_SIZE, overlap)
    correlation = torch.as_tensor(rho ** torch.arange(length, dtype=torch.float64))
    rule = Rule("two_scale", block=4, coarse_blanket=16, coarse_overlap=8)
    return rule_denoiser(correlation, length, BLANKET_SIZE, overlap, rule)


def test_two_scale_composition_removes_most_of_the_blanket_bias():
    """rho = 0.9, O = 4, where symmetric blankets lose 12 % of the variance and 0.04 of the
    lag-1 correlation at seams (interior 0.880, seams 0.858, variance 0.881): with the coarse
    model's correction, from the exact output covariance, the lag-1 correlation is within
    0.005 of rho inside blankets (0.903) and within 0.015 at seams (0.889), the mean variance
    within 0.015 of 1 (1.010) and every variance within 0.025 (0.988 to 1.022). What is left
    at seams is decided below sigma = 0.3, where the blankets alone denoise."""
    length = padded_size(TRAJECTORY_SIZE, BLANKET_SIZE, 4)
    covariance = output_covariance(two_scale_denoiser(4), length)
    interior, seams, variance = class_means(covariance, 4, "symmetric")
    assert abs(interior - RHO) < 5e-3 and abs(seams - RHO) < 1.5e-2
    assert abs(variance - 1) < 1.5e-2
    assert (covariance.diagonal() - 1).abs().max() < 2.5e-2


def test_sampled_two_scale_trajectories_keep_lag1_and_variance():
    """8192 trajectories drawn with two-scale composition: lag-1 correlation inside blankets
    and across seams, and the variance, within the bounds of the exact test above + 5
    standard errors (the standard errors as in the blankets' test above)."""
    length = padded_size(TRAJECTORY_SIZE, BLANKET_SIZE, 4)
    interior, seams, variance = class_means(
        sample_covariance(two_scale_denoiser(4), length), 4, "symmetric"
    )
    se_correlation = (1 - 0.6**2) / math.sqrt(SAMPLES)
    se_variance = math.sqrt(2 / (SAMPLES - 1))
    assert abs(interior - RHO) <= 5e-3 + 5 * se_correlation, interior
    assert abs(seams - RHO) <= 1.5e-2 + 5 * se_correlation, seams
    assert abs(variance - 1) <= 1.5e-2 + 5 * se_variance, variance

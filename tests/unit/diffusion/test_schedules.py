"""Noise schedules: VE-equivalent noise levels, training draws and the VE denoiser adapter."""

import pytest
import torch
from azula.noise import RectifiedSchedule, VESchedule

from skyquilt.diffusion.schedules import (
    SCHEDULES,
    VEDenoiser,
    build_schedule,
    sample_training_sigma,
)

SIGMA_MIN, SIGMA_MAX = 1e-3, 1e3


@pytest.mark.parametrize("name", SCHEDULES)
def test_ve_sigma_spans_sigma_min_to_sigma_max(name):
    schedule = build_schedule(name, SIGMA_MIN, SIGMA_MAX)
    ends = schedule.sigma(torch.tensor([0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(ends, torch.tensor([SIGMA_MIN, SIGMA_MAX], dtype=torch.float64))


@pytest.mark.parametrize("name", SCHEDULES)
def test_ve_sigma_increases_with_time(name):
    sigma = build_schedule(name, SIGMA_MIN, SIGMA_MAX).sigma(torch.linspace(0, 1, 1001))
    assert torch.all(sigma[1:] > sigma[:-1])


@pytest.mark.parametrize("name", SCHEDULES)
def test_ve_sigma_is_the_ratio_of_azula_scales(name):
    schedule = build_schedule(name, SIGMA_MIN, SIGMA_MAX)
    t = torch.rand(100)
    alpha_t, sigma_t = schedule(t)
    torch.testing.assert_close(schedule.sigma(t), sigma_t / alpha_t)


def test_names_map_to_azula_schedules():
    assert isinstance(build_schedule("rectified", SIGMA_MIN, SIGMA_MAX).base, RectifiedSchedule)
    assert isinstance(build_schedule("log_linear", SIGMA_MIN, SIGMA_MAX).base, VESchedule)


def test_log_linear_is_linear_in_log_sigma():
    schedule = build_schedule("log_linear", SIGMA_MIN, SIGMA_MAX)
    t = torch.linspace(0, 1, 7, dtype=torch.float64)
    expected = torch.logspace(-3, 3, 7, dtype=torch.float64)
    torch.testing.assert_close(schedule.sigma(t), expected)


def test_unknown_schedule_names_the_allowed_ones():
    with pytest.raises(ValueError, match="rectified, log_linear"):
        build_schedule("cosine", SIGMA_MIN, SIGMA_MAX)


@pytest.mark.parametrize("bounds", [(1e-3, 1e-3), (0.0, 1.0), (2.0, 1.0)])
def test_invalid_sigma_range_is_rejected(bounds):
    with pytest.raises(ValueError, match="sigma_min"):
        build_schedule("log_linear", *bounds)


def test_rectified_needs_sigma_max_above_one():
    with pytest.raises(ValueError, match="sigma_min < 1 < sigma_max"):
        build_schedule("rectified", 1e-3, 0.5)


@pytest.mark.parametrize("name", SCHEDULES)
def test_training_sigmas_lie_in_the_schedule_range(name):
    schedule = build_schedule(name, SIGMA_MIN, SIGMA_MAX)
    sigma = sample_training_sigma(schedule, 10_000, generator=torch.Generator().manual_seed(0))
    assert sigma.shape == (10_000,)
    assert sigma.dtype == torch.float32
    assert sigma.min() >= SIGMA_MIN * (1 - 1e-5) and sigma.max() <= SIGMA_MAX * (1 + 1e-5)
    # t ~ U(0, 1) maps through the monotone sigma(t): half the draws lie below sigma(1/2).
    below = (sigma < schedule.sigma(torch.tensor(0.5))).float().mean()
    assert abs(below - 0.5) < 0.02


def test_training_sigmas_follow_the_generator():
    schedule = build_schedule("rectified", SIGMA_MIN, SIGMA_MAX)
    first = sample_training_sigma(schedule, 16, generator=torch.Generator().manual_seed(3))
    second = sample_training_sigma(schedule, 16, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, second)


@pytest.mark.parametrize("name", SCHEDULES)
def test_adapter_calls_the_ve_denoiser_in_ve_coordinates(name):
    schedule = build_schedule(name, SIGMA_MIN, SIGMA_MAX)
    calls = []

    def denoise(x, sigma):
        calls.append((x, sigma))
        return 2 * x

    x_t = torch.randn(3, 5)
    t = torch.tensor(0.7)
    alpha_t, sigma_t = schedule(t)
    mean = VEDenoiser(denoise, schedule)(x_t, t).mean
    ((x_ve, sigma_ve),) = calls
    torch.testing.assert_close(x_ve, x_t / alpha_t)
    torch.testing.assert_close(sigma_ve, sigma_t / alpha_t)
    torch.testing.assert_close(mean, 2 * x_t / alpha_t)


def test_adapter_returns_the_state_dtype_for_a_reduced_precision_denoiser():
    schedule = build_schedule("rectified", SIGMA_MIN, SIGMA_MAX)
    denoiser = VEDenoiser(lambda x, sigma: x.to(torch.bfloat16), schedule)
    assert denoiser(torch.randn(2, 3), torch.tensor(0.5)).mean.dtype == torch.float32

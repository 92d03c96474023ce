"""Samplers proven on Gaussian data, where the exact denoiser is known in closed form.

For x ~ N(mu, diag sd^2) and x_sigma = x + sigma eps, E[x | x_sigma] = mu + sd^2 / (sd^2 +
sigma^2) (x_sigma - mu), and the probability flow ODE maps x_{sigma_max} to x_{sigma_min} by
x_{sigma_min} - mu = (x_{sigma_max} - mu) sqrt((sd^2 + sigma_min^2) / (sd^2 + sigma_max^2)).
"""

import math

import pytest
import torch
from azula.sample import zABSampler

from skyquilt.diffusion.samplers import SAMPLERS, build_sampler, init_noise
from skyquilt.diffusion.schedules import VEDenoiser, build_schedule

SIGMA_MIN, SIGMA_MAX = 1e-3, 1e3
STEPS = 64
SAMPLES = 8192
MU = torch.tensor([1.0, -0.5, 0.0, 2.0])
SD = torch.tensor([0.1, 0.5, 1.0, 2.0])

# Largest relative bias of the sample std at 64 steps (|std / sd - 1|, any of the four
# dimensions, either schedule), measured with 2^19 samples, where the sampling error is
# below 0.2%: lms (order 3) 0.6%, ddim 6.5%, pc 6.7%, rewind 6.7%, ddpm 13.3%. It is
# discretisation error, not a bug: ddim and lms converge to the exact flow at their order
# (test_deterministic_samplers_converge_to_the_exact_flow) and the stochastic samplers'
# bias shrinks with more steps (test_stochastic_bias_shrinks_with_more_steps).
# Allowances: the measured bias rounded up with about 1.5 points of margin.
STD_ALLOWANCE = {"lms": 0.01, "ddim": 0.08, "pc": 0.08, "rewind": 0.08, "ddpm": 0.15}


def gaussian_denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Exact E[x | x + sigma eps] for x ~ N(MU, diag SD^2); x: (B, 4)."""
    return MU + SD**2 / (SD**2 + sigma**2) * (x - MU)


def draw(name, schedule_name="rectified", steps=STEPS, samples=SAMPLES, seed=0, **options):
    schedule = build_schedule(schedule_name, SIGMA_MIN, SIGMA_MAX)
    sampler = build_sampler(name, gaussian_denoise, schedule, steps, options)
    torch.manual_seed(seed)
    return sampler(init_noise(schedule, (samples, MU.numel())))


CASES = [(name, "rectified") for name in SAMPLERS] + [("lms", "log_linear"), ("ddpm", "log_linear")]


@pytest.mark.parametrize(("name", "schedule_name"), CASES)
def test_sampler_reproduces_gaussian_mean_and_std(name, schedule_name):
    """Mean and std of 8192 draws match mu and sd.

    Tolerances: 5 standard errors of the estimators, SE(mean) = sd / sqrt(n) and
    SE(std) = sd / sqrt(2 (n - 1)) for Gaussian samples, so that each of the 56 checks in
    this test fails by chance with probability 6e-7; plus, for the std only, the
    discretisation allowance STD_ALLOWANCE[name] * sd of 64 steps (see its comment).
    The mean needs no allowance: its measured bias is below 0.003 sd.
    """
    x = draw(name, schedule_name)
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    mean_error = (x.mean(0) - MU).abs()
    std_error = (x.std(0) - SD).abs()
    assert torch.all(mean_error <= 5 * SD / math.sqrt(SAMPLES)), mean_error / SD
    std_tolerance = 5 * SD / math.sqrt(2 * (SAMPLES - 1)) + STD_ALLOWANCE[name] * SD
    assert torch.all(std_error <= std_tolerance), std_error / SD


@pytest.mark.parametrize("schedule_name", ["rectified", "log_linear"])
@pytest.mark.parametrize(("name", "options", "min_ratio"), [("ddim", {}, 3.0), ("lms", {}, 10.0)])
def test_deterministic_samplers_converge_to_the_exact_flow(schedule_name, name, options, min_ratio):
    """ddim (Euler, order 1) and lms (Adams-Bashforth, order 3) follow the probability flow.

    Draw by draw, with no sampling error, the gap to the exact ODE solution must shrink by
    at least `min_ratio` from 64 to 256 steps (4x for order 1, 64x asymptotically for order 3).
    """
    schedule = build_schedule(schedule_name, SIGMA_MIN, SIGMA_MAX)
    alpha_1, _ = schedule(torch.tensor(1.0))
    torch.manual_seed(0)
    x1 = init_noise(schedule, (256, MU.numel()))
    exact = MU + (x1 / alpha_1 - MU) * torch.sqrt((SD**2 + SIGMA_MIN**2) / (SD**2 + SIGMA_MAX**2))
    gaps = []
    for steps in (STEPS, 4 * STEPS):
        x0 = build_sampler(name, gaussian_denoise, schedule, steps, options)(x1)
        gaps.append(((x0 - exact).abs().amax(0) / SD).max().item())
    assert gaps[0] < 0.25
    assert gaps[0] / gaps[1] >= min_ratio, gaps


@pytest.mark.parametrize("schedule_name", ["rectified", "log_linear"])
@pytest.mark.parametrize(("order", "steps"), [(1, 32), (2, 32), (3, 32), (4, 32), (3, 2)])
def test_lms_is_azulas_adams_bashforth_sampler(schedule_name, order, steps):
    """Our LMS (coefficients precomputed, VE coordinates) is azula's zABSampler, which solves
    the Adams-Bashforth system in every step; the input is left as is.

    Tolerance: a few float32 roundings (6e-5 each) of a state that starts at the VE scale
    sigma_max = 1e3; at 32 steps, changing the order by one moves the draws by 0.0075 to 0.41.
    """
    schedule = build_schedule(schedule_name, SIGMA_MIN, SIGMA_MAX)
    torch.manual_seed(0)
    x1 = init_noise(schedule, (256, MU.numel()))
    before = x1.clone()
    ours = build_sampler("lms", gaussian_denoise, schedule, steps, {"order": order})(x1)
    reference = zABSampler(VEDenoiser(gaussian_denoise, schedule), order=order, steps=steps,
                           silent=True)(x1)  # fmt: skip
    assert torch.equal(x1, before)
    assert torch.allclose(ours, reference, rtol=0, atol=5e-4), (ours - reference).abs().max()
    assert not torch.allclose(ours, x1 / schedule(torch.tensor(1.0))[0], atol=0.1)


def test_first_order_lms_is_ddim():
    assert torch.allclose(draw("lms", order=1, samples=64), draw("ddim", samples=64), atol=1e-5)


@pytest.mark.parametrize("name", ["ddpm", "pc", "rewind"])
def test_stochastic_bias_shrinks_with_more_steps(name):
    """On the log-linear schedule the relative std bias is the same in every dimension, so it
    is pooled over the 4 dimensions of 16384 draws (SE = 1 / sqrt(2 * 65536) = 0.28%).
    First order in the step size, the bias at 256 steps must be under half that at 64."""
    biases = []
    for steps in (STEPS, 4 * STEPS):
        x = draw(name, "log_linear", steps=steps, samples=16384)
        biases.append(abs((x.std(0) / SD).mean().item() - 1))
    assert biases[1] < 0.5 * biases[0], biases


@pytest.mark.parametrize("name", SAMPLERS)
def test_same_seed_reproduces_a_sample_bit_for_bit(name):
    assert torch.equal(draw(name, samples=16, seed=7), draw(name, samples=16, seed=7))
    assert not torch.equal(draw(name, samples=16, seed=7), draw(name, samples=16, seed=8))


@pytest.mark.parametrize("name", SAMPLERS)
def test_on_step_is_called_once_per_step(name):
    schedule = build_schedule("rectified", SIGMA_MIN, SIGMA_MAX)
    sampler = build_sampler(name, gaussian_denoise, schedule, 20, {})
    ticks = []
    sampler.on_step = lambda: ticks.append(1)
    sampler(init_noise(schedule, (2, 4)))
    assert len(ticks) == sampler.steps


@pytest.mark.parametrize(
    ("name", "options", "calls"),
    [
        ("lms", {}, 20),
        ("ddpm", {}, 20),
        ("ddim", {"eta": 0.5}, 20),
        ("pc", {"corrections": 2}, 60),
        # 20 grid steps: 0 -> 8, back to 6 -> 14, back to 12 -> 20: 2 rewinds of 2 steps.
        ("rewind", {"rewind_after": 8, "jump": 2}, 24),
        ("rewind", {"rewind_after": 8, "jump": 0}, 20),
        ("rewind", {"rewind_after": 30, "jump": 4}, 20),
    ],
)
def test_denoiser_calls_are_counted_exactly(name, options, calls):
    schedule = build_schedule("rectified", SIGMA_MIN, SIGMA_MAX)
    seen = []

    def counting_denoise(x, sigma):
        seen.append(sigma)
        return gaussian_denoise(x, sigma)

    sampler = build_sampler(name, counting_denoise, schedule, 20, options)
    sampler(init_noise(schedule, (2, 4)))
    assert len(seen) == sampler.denoiser_calls == calls


def test_rewind_revisits_noise_levels_and_ends_at_sigma_min():
    schedule = build_schedule("log_linear", SIGMA_MIN, SIGMA_MAX)
    sigmas = []

    def recording_denoise(x, sigma):
        sigmas.append(sigma.item())
        return gaussian_denoise(x, sigma)

    sampler = build_sampler(
        "rewind", recording_denoise, schedule, 12, {"rewind_after": 4, "jump": 2}
    )
    sampler(init_noise(schedule, (2, 4)))
    grid = schedule.sigma(torch.linspace(1, 0, 13)).tolist()
    # Steps from grid indices 0-3, back to 2, then 2-5, 4-7, 6-9, 8-11.
    expected = [grid[i] for i in [0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 8, 9, 8, 9, 10, 11]]
    assert sigmas == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", SAMPLERS)
def test_state_stays_float32_with_a_bfloat16_denoiser(name):
    schedule = build_schedule("rectified", SIGMA_MIN, SIGMA_MAX)

    def bfloat16_denoise(x, sigma):
        return gaussian_denoise(x.bfloat16(), sigma.bfloat16()).bfloat16()

    x = build_sampler(name, bfloat16_denoise, schedule, 16, {})(init_noise(schedule, (8, 4)))
    assert x.dtype == torch.float32 and torch.isfinite(x).all()


@pytest.mark.parametrize("schedule_name", ["rectified", "log_linear"])
def test_initial_noise_is_the_unit_variance_marginal_at_sigma_max(schedule_name):
    schedule = build_schedule(schedule_name, SIGMA_MIN, SIGMA_MAX)
    alpha_1, _ = schedule(torch.tensor(1.0))
    torch.manual_seed(0)
    x1 = init_noise(schedule, (100_000,))
    assert x1.dtype == torch.float32
    ve_std = (x1 / alpha_1).std().item()
    assert ve_std == pytest.approx(math.sqrt(1 + SIGMA_MAX**2), rel=5 / math.sqrt(2 * 100_000))


def test_unknown_sampler_names_the_allowed_ones():
    schedule = build_schedule("rectified", SIGMA_MIN, SIGMA_MAX)
    with pytest.raises(ValueError, match="lms, ddpm, ddim, pc, rewind"):
        build_sampler("euler", gaussian_denoise, schedule, 8, {})


@pytest.mark.parametrize(
    ("name", "options", "allowed"),
    [("pc", {"steps": 3}, "corrections, delta"), ("ddpm", {"eta": 1.0}, "none")],
)
def test_unknown_option_names_the_allowed_ones(name, options, allowed):
    schedule = build_schedule("rectified", SIGMA_MIN, SIGMA_MAX)
    with pytest.raises(ValueError, match=f"allowed: {allowed}"):
        build_sampler(name, gaussian_denoise, schedule, 8, options)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("lms", {"order": 0}),
        ("lms", {"order": 2.5}),
        ("ddim", {"eta": -1.0}),
        ("pc", {"delta": 0.0}),
        ("pc", {"corrections": -1}),
        ("rewind", {"rewind_after": 4, "jump": 4}),
        ("rewind", {"rewind_after": 0}),
    ],
)
def test_invalid_option_values_are_rejected(name, options):
    schedule = build_schedule("rectified", SIGMA_MIN, SIGMA_MAX)
    with pytest.raises(ValueError, match=next(iter(options))):
        build_sampler(name, gaussian_denoise, schedule, 8, options)


RESUMABLE = [
    ("pc", {}),
    ("ddpm", {}),
    ("ddim", {"eta": 0.0}),
    ("ddim", {"eta": 0.5}),
    ("rewind", {"rewind_after": 3, "jump": 1}),
    ("lms", {}),
    ("lms", {"order": 1}),
]


def nonlinear_denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A denoiser that is not linear, so that every entry of the history matters."""
    return torch.tanh(x / (1 + sigma)) + 0.1 * torch.sin(3 * x)


@pytest.mark.parametrize(("name", "options"), RESUMABLE)
def test_stepping_with_a_save_and_restore_is_bit_identical(name, options, tmp_path):
    """Running step by step, saving the state and RNG after step k and continuing from the
    reloaded copy in a fresh sampler (after other draws from the RNG) gives exactly the
    sample of one uninterrupted call, for every k."""
    schedule = build_schedule("rectified", SIGMA_MIN, SIGMA_MAX)

    def sampler():
        return build_sampler(name, nonlinear_denoise, schedule, 9, options)

    torch.manual_seed(3)
    whole = sampler()(init_noise(schedule, (2, 5, 3)))
    steps = sampler().steps
    for k in range(steps + 1):
        first = sampler()
        torch.manual_seed(3)
        state = first.begin(init_noise(schedule, (2, 5, 3)))
        for _ in range(k):
            state = first.advance(state)
        torch.save({"state": state, "rng": torch.get_rng_state()}, tmp_path / "state.pt")
        torch.manual_seed(11)
        torch.randn(7)
        saved = torch.load(tmp_path / "state.pt", weights_only=True)
        torch.set_rng_state(saved["rng"])
        second = sampler()
        assert torch.equal(second.finish(second.run(saved["state"])), whole), k


def test_run_calls_after_step_with_every_state():
    schedule = build_schedule("rectified", SIGMA_MIN, SIGMA_MAX)
    sampler = build_sampler("lms", nonlinear_denoise, schedule, 5)
    seen = []
    sampler.run(
        sampler.begin(init_noise(schedule, (1, 4))), lambda state: seen.append(state["step"])
    )
    assert seen == [1, 2, 3, 4, 5]

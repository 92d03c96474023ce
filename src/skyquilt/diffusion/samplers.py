r"""Reverse diffusion samplers, selected by name with their options.

All samplers but "lms" and "rewind" are azula's, run on our VE denoiser through `VEDenoiser`:

- "lms": Adams-Bashforth on the noise prediction in the variable sigma_t / alpha_t, i.e.
  k-diffusion's linear multistep (LMS) sampler and azula's zABSampler; option `order`.
  Written here, see `LMSSampler`.
- "ddpm": azula's DDPMSampler (ancestral).
- "ddim": azula's DDIMSampler; option `eta` (0: deterministic, 1: DDPM).
- "pc": azula's PCSampler, `corrections` Langevin-like corrector steps of amplitude
  `delta` before each DDIM predictor step.
- "rewind": written here, see `RewindSampler`.

Every sampler maps x1: (B, *shape), drawn by `init_noise`, to x0: (B, *shape) in the
coordinates of the schedule (at t = 0, alpha_0 = 1, so x0 is a VE sample at sigma_min).
Their noise comes from torch's global RNG (torch.randn_like), so `torch.manual_seed(s)`
before `init_noise` and the call reproduces a sample bit for bit. The state stays in
float32 whatever precision the denoiser runs in.
"""

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import torch
from azula.sample import DDIMSampler, DDPMSampler, PCSampler
from azula.sample import Sampler as AzulaSampler
from torch import Tensor

from .options import SAMPLERS, check_integer, resolve_options
from .schedules import DiffusionSchedule, VEDenoise, VEDenoiser

__all__ = ["SAMPLERS", "Sampler", "build_sampler", "init_noise", "resolve_options"]


class Sampler(Protocol):
    """What `build_sampler` returns."""

    steps: int  # sampler steps per call, i.e. calls of on_step
    on_step: Callable[[], None] | None  # called once after every step

    @property
    def denoiser_calls(self) -> int:
        """Denoiser evaluations per call."""

    def __call__(self, x: Tensor) -> Tensor:
        """Run the reverse process from t = 1 to t = 0.

        Arguments:
            x: x1, (B, *shape) float32, drawn by `init_noise`.

        Returns:
            x0: (B, *shape) float32, in the coordinates of the schedule.
        """


class _StepHook:
    """Calls `on_step()` after each step of an azula sampler's loop.

    azula iterates every sampler loop through `progress_bar`, so wrapping it sees each step
    end (the loop asks for the next item only once the step is done).
    """

    on_step: Callable[[], None] | None = None

    def progress_bar(self, it: Iterable) -> Iterator:
        for item in super().progress_bar(it):
            yield item
            if self.on_step is not None:
                self.on_step()


class LMSSampler(_StepHook, AzulaSampler):
    r"""Linear multistep (Adams-Bashforth) on the noise prediction, in VE coordinates.

    The method of azula's zABSampler, written here so that a step costs little more than
    its denoiser call (issue 7 measures the time outside the denoiser). With y = x_t / alpha_t
    and u = sigma_t / alpha_t the probability flow is dy/du = z(y, u) = (y - E[x | y]) / u,
    and a step of order n = min(order, i + 1) from u_i to u_{i+1} is

        y_{i+1} = y_i + sum_{j < n} c_ij z(y_{i-j}, u_{i-j})

    where c_ij integrates, from u_i to u_{i+1}, the Lagrange polynomial that is 1 at u_{i-j}
    and 0 at the other n - 1 nodes. The c_ij depend only on the grid, so they are computed
    once, in float64, before sampling (zABSampler solves a Vandermonde system in every
    step), and each step is one denoiser call and n + 2 tensor operations in place.
    """

    def __init__(self, denoiser: VEDenoiser, order: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.denoiser = denoiser
        self.order = order

    @property
    def denoiser_calls(self) -> int:
        return self.steps

    def coefficients(self, u: Tensor) -> list[list[float]]:
        """u: (steps + 1,) float64 noise levels -> c_ij of every step, newest node first.

        The system of step i is V c = b with V_kl = u_{i+1-n+l}^k on its n nodes and
        b_k = (u_{i+1}^{k+1} - u_i^{k+1}) / (k + 1); the steps of one order are solved as
        one batch.
        """
        table = []
        for n in range(1, self.order + 1):
            # Step i has order min(order, i + 1): only step n - 1 has order n < `order`.
            last = n if n < self.order else self.steps
            step = torch.arange(n - 1, min(last, self.steps))
            if step.numel() == 0:
                break
            powers = torch.arange(n, dtype=torch.float64)
            nodes = u[step[:, None] + 1 - n + torch.arange(n)]  # (m, n), oldest first
            vandermonde = nodes[:, None, :] ** powers[None, :, None]  # (m, k, node)
            ends = u[step + 1, None] ** (powers + 1) - u[step, None] ** (powers + 1)
            table.extend(torch.linalg.solve(vandermonde, ends / (powers + 1)).flip(-1).tolist())
        return table

    @torch.no_grad()
    def __call__(self, x: Tensor, **kwargs) -> Tensor:
        time = torch.linspace(self.start, self.stop, self.steps + 1, dtype=torch.float64)
        alpha, sigma = self.denoiser.schedule(time)
        u = sigma / alpha
        table = self.coefficients(u)
        levels = u.to(device=x.device, dtype=x.dtype)
        y = x / alpha[0].item()
        history: deque[Tensor] = deque(maxlen=self.order)  # z of the latest steps, newest first
        for i in self.progress_bar(range(self.steps)):
            mean = self.denoiser.denoise(y, levels[i], **kwargs).to(x.dtype)
            history.appendleft(torch.sub(y, mean).div_(levels[i]))
            for c, z in zip(table[i], history, strict=True):
                y.add_(z, alpha=c)
        return y.mul_(alpha[-1].item())


class DDPMStepSampler(_StepHook, DDPMSampler):
    @property
    def denoiser_calls(self) -> int:
        return self.steps


class DDIMStepSampler(_StepHook, DDIMSampler):
    @property
    def denoiser_calls(self) -> int:
        return self.steps


class PredictorCorrectorSampler(_StepHook, PCSampler):
    @property
    def denoiser_calls(self) -> int:
        return self.steps * (self.corrections + 1)


class RewindSampler(_StepHook, DDIMSampler):
    r"""Deterministic DDIM steps that periodically rewind by re-noising the state.

    Written by hand because azula has no rewind sampler. On the grid t_0 = 1 > ... > t_N = 0
    (N = `grid_steps`), after every `rewind_after` DDIM steps, unless t_N is reached, the
    state at t_i is sent back to t_{i - jump} with the forward kernel

        x_t = (alpha_t / alpha_s) x_s + sqrt(sigma_t^2 - (alpha_t / alpha_s)^2 sigma_s^2) eps

    (t = t_{i - jump} > s = t_i), which maps samples of p(x_s) exactly to samples of p(x_t),
    and denoising resumes from there. Each cycle advances rewind_after - jump grid steps, so
    there are R = ceil((N - rewind_after) / (rewind_after - jump)) rewinds (none when
    N <= rewind_after or jump = 0) and `steps` = N + R * jump DDIM steps, one denoiser call
    each: at most N * rewind_after / (rewind_after - jump) calls.
    """

    def __init__(self, denoiser: VEDenoiser, rewind_after: int, jump: int, steps: int, **kwargs):
        super().__init__(denoiser, eta=0.0, steps=steps, **kwargs)
        self.rewind_after = rewind_after
        self.jump = jump
        self.grid_steps = steps
        self.rewinds = (
            -(-(steps - rewind_after) // (rewind_after - jump))
            if jump > 0 and steps > rewind_after
            else 0
        )
        self.steps = steps + self.rewinds * jump

    @property
    def timesteps(self) -> Tensor:
        return torch.linspace(
            self.start, self.stop, self.grid_steps + 1, dtype=self.dtype, device=self.device
        )

    @property
    def denoiser_calls(self) -> int:
        return self.steps

    def renoise(self, x_s: Tensor, s: Tensor, t: Tensor) -> Tensor:
        """A draw of q(x_t | x_s) for t > s: x_s: (B, *shape) -> x_t: (B, *shape)."""
        alpha_s, sigma_s = self.denoiser.schedule(s)
        alpha_t, sigma_t = self.denoiser.schedule(t)
        scale = alpha_t / alpha_s
        std = torch.sqrt(torch.clip(sigma_t**2 - (scale * sigma_s) ** 2, min=0))
        return scale * x_s + std * torch.randn_like(x_s)

    @torch.no_grad()
    def __call__(self, x: Tensor, **kwargs) -> Tensor:
        time = self.timesteps.to(device=x.device)
        index, since_rewind = 0, 0
        for _ in self.progress_bar(range(self.steps)):
            x = self.step(x, time[index], time[index + 1], **kwargs)
            index, since_rewind = index + 1, since_rewind + 1
            if self.jump > 0 and since_rewind == self.rewind_after and index < self.grid_steps:
                x = self.renoise(x, time[index], time[index - self.jump])
                index, since_rewind = index - self.jump, 0
        return x


_CLASSES = {
    "lms": LMSSampler,
    "ddpm": DDPMStepSampler,
    "ddim": DDIMStepSampler,
    "pc": PredictorCorrectorSampler,
    "rewind": RewindSampler,
}


def build_sampler(
    name: str,
    denoise: VEDenoise,
    schedule: DiffusionSchedule,
    steps: int,
    options: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> Sampler:
    """Sampler `name` over `steps` uniform steps of `schedule` in t, from t = 1 to 0.

    Arguments:
        name: one of SAMPLERS.
        denoise: denoise(x: (B, *shape), sigma: ()) -> E[x | x + sigma eps]: (B, *shape), in
            VE coordinates.
        schedule: the noise schedule, see `skyquilt.diffusion.schedules`.
        steps: the number of steps of the uniform grid in t, >= 1 ("rewind" takes more
            sampler steps, "pc" more denoiser calls per step: see `denoiser_calls`).
        options: the sampler's options, over its defaults (see `resolve_options`).
        progress: show azula's tqdm bar; set `.on_step` on the result to drive your own.

    Returns:
        The sampler, x1: (B, *shape) -> x0: (B, *shape).
    """
    options = resolve_options(name, options)
    check_integer("steps", steps, 1)
    denoiser = VEDenoiser(denoise, schedule)
    return _CLASSES[name](denoiser, steps=steps, silent=not progress, **options)


def init_noise(
    schedule: DiffusionSchedule,
    shape: Sequence[int],
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw x1 ~ N(0, (alpha_1^2 + sigma_1^2) I), the start of every sampler.

    The marginal at t = 1 of unit-variance data (sigma_data = 1); in VE coordinates that is
    sqrt(1 + sigma_max^2) ~ sigma_max times a standard normal draw.

    Arguments:
        schedule: the schedule the sampler runs on.
        shape: the shape of x1, e.g. (B, T', C, H, W).
        generator: the generator to draw from; torch's global one when None.
        device: where to draw.

    Returns:
        x1: (*shape) float32.
    """
    alpha_1, sigma_1 = schedule(torch.tensor(1.0, dtype=torch.float64))
    std = float(torch.sqrt(alpha_1**2 + sigma_1**2))
    return std * torch.randn(tuple(shape), generator=generator, device=device)

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

Every sampler also runs step by step, so that generation can checkpoint between steps:
`begin(x1)` gives the state (a dict of plain tensors and ints: "x", "step" and the sampler's
own history), `advance(state)` makes one step, `finish(state)` gives x0, and
`run(state, after_step)` loops from `state["step"]` to `steps`. `__call__` is
`finish(run(begin(x)))`, with the arithmetic of azula's loops (and ours) unchanged, so a run
that is stopped after any step and resumed from its state (and torch's RNG state at that
point) gives bit-identical results.
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

__all__ = [
    "SAMPLERS",
    "Sampler",
    "SamplerState",
    "build_sampler",
    "init_noise",
    "resolve_options",
]

# A sampler's state between two steps: "x" (the current tensor), "step" (steps made) and the
# sampler's own entries, all plain tensors, ints and lists (torch.load(weights_only=True)).
SamplerState = dict[str, Any]


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

    def begin(self, x: Tensor) -> SamplerState:
        """The state before the first step, from x1: (B, *shape) float32."""

    def advance(self, state: SamplerState) -> SamplerState:
        """Make step `state["step"]`: the state after it (step + 1).

        It may reuse the tensors of `state` (LMS updates x in place): copy a state to keep it.
        """

    def finish(self, state: SamplerState) -> Tensor:
        """x0: (B, *shape) from the state after the last step."""

    def run(
        self, state: SamplerState, after_step: Callable[[SamplerState], None] | None = None
    ) -> SamplerState:
        """Steps from `state["step"]` to `steps`; `after_step(state)` after each of them."""


class _StepLoop:
    """The step loop every sampler shares: `run` over `advance`, calling `on_step()` after
    each step, and `__call__` = finish(run(begin(x))).

    The loop goes through azula's `progress_bar`, as azula's own loops do.
    """

    on_step: Callable[[], None] | None = None

    def progress_bar(self, it: Iterable) -> Iterator:
        for item in super().progress_bar(it):
            yield item
            if self.on_step is not None:
                self.on_step()

    @torch.no_grad()
    def run(
        self, state: SamplerState, after_step: Callable[[SamplerState], None] | None = None
    ) -> SamplerState:
        for _ in self.progress_bar(range(state["step"], self.steps)):
            state = self.advance(state)
            if after_step is not None:
                after_step(state)
        return state

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        return self.finish(self.run(self.begin(x)))


class _AzulaLoop(_StepLoop):
    """azula's `Sampler.__call__` as steps: step i goes from timesteps[i] to timesteps[i + 1]."""

    def begin(self, x: Tensor) -> SamplerState:
        return {"x": x, "step": 0}

    @torch.no_grad()
    def advance(self, state: SamplerState) -> SamplerState:
        x, i = state["x"], state["step"]
        time = self.timesteps.to(device=x.device)
        return {"x": self.step(x, time[i], time[i + 1]), "step": i + 1}

    def finish(self, state: SamplerState) -> Tensor:
        return state["x"]


class LMSSampler(_StepLoop, AzulaSampler):
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

    def _grid(self, like: Tensor) -> tuple[Tensor, list[list[float]], Tensor]:
        """alpha: (steps + 1,) float64, the c_ij of every step, and the noise levels u:
        (steps + 1,) on the device and in the dtype of `like`; computed once per sampler."""
        cache = self.__dict__.setdefault("_grids", {})
        key = (like.device, like.dtype)
        if key not in cache:
            time = torch.linspace(self.start, self.stop, self.steps + 1, dtype=torch.float64)
            alpha, sigma = self.denoiser.schedule(time)
            u = sigma / alpha
            cache[key] = (alpha, self.coefficients(u), u.to(device=like.device, dtype=like.dtype))
        return cache[key]

    def begin(self, x: Tensor) -> SamplerState:
        alpha, _, _ = self._grid(x)
        # "history": z of the latest steps, newest first (at most `order`).
        return {"x": x / alpha[0].item(), "step": 0, "history": []}

    @torch.no_grad()
    def advance(self, state: SamplerState) -> SamplerState:
        y, i = state["x"], state["step"]
        _, table, levels = self._grid(y)
        history: deque[Tensor] = deque(state["history"], maxlen=self.order)
        mean = self.denoiser.denoise(y, levels[i]).to(y.dtype)
        history.appendleft(torch.sub(y, mean).div_(levels[i]))
        for c, z in zip(table[i], history, strict=True):
            y.add_(z, alpha=c)
        return {"x": y, "step": i + 1, "history": list(history)}

    def finish(self, state: SamplerState) -> Tensor:
        alpha, _, _ = self._grid(state["x"])
        return state["x"].mul_(alpha[-1].item())


class DDPMStepSampler(_AzulaLoop, DDPMSampler):
    @property
    def denoiser_calls(self) -> int:
        return self.steps


class DDIMStepSampler(_AzulaLoop, DDIMSampler):
    @property
    def denoiser_calls(self) -> int:
        return self.steps


class PredictorCorrectorSampler(_AzulaLoop, PCSampler):
    @property
    def denoiser_calls(self) -> int:
        return self.steps * (self.corrections + 1)


class RewindSampler(_AzulaLoop, DDIMSampler):
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

    def begin(self, x: Tensor) -> SamplerState:
        # "index": the position on the grid; "since_rewind": DDIM steps since the last rewind.
        return {"x": x, "step": 0, "index": 0, "since_rewind": 0}

    @torch.no_grad()
    def advance(self, state: SamplerState) -> SamplerState:
        x, index, since_rewind = state["x"], state["index"], state["since_rewind"]
        time = self.timesteps.to(device=x.device)
        x = self.step(x, time[index], time[index + 1])
        index, since_rewind = index + 1, since_rewind + 1
        if self.jump > 0 and since_rewind == self.rewind_after and index < self.grid_steps:
            x = self.renoise(x, time[index], time[index - self.jump])
            index, since_rewind = index - self.jump, 0
        return {"x": x, "step": state["step"] + 1, "index": index, "since_rewind": since_rewind}

    def finish(self, state: SamplerState) -> Tensor:
        return state["x"]


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

r"""Noise schedules: the map from diffusion time t in [0, 1] to noise levels.

The model is trained variance-exploding (VE, EDM style): x_sigma = x + sigma * eps with
sigma in [sigma_min, sigma_max]. Samplers come from azula, whose schedules are written
x_t = alpha_t x + sigma_t eps. Both describe the same process once x_t is divided by
alpha_t, so every azula schedule has a VE-equivalent noise level sigma_t / alpha_t.

- "rectified": azula's RectifiedSchedule, alpha_t = 1 - t + t / sigma_max and
  sigma_t = t + (1 - t) sigma_min, so that sigma_t / alpha_t runs from sigma_min (t = 0)
  to sigma_max (t = 1).
- "log_linear": azula's VESchedule, alpha_t = 1 and log sigma_t linear in t.

`VEDenoiser` adapts our denoiser `denoise(x, sigma) -> E[x | x_sigma]` (VE coordinates)
to an azula `Denoiser` under any of these schedules.
"""

from collections.abc import Callable

import torch
from azula.denoise import Denoiser as AzulaDenoiser
from azula.denoise import DiracPosterior
from azula.noise import RectifiedSchedule, VESchedule
from azula.noise import Schedule as AzulaSchedule
from torch import Tensor

from skyquilt.diffusion.options import SCHEDULES, check_schedule

__all__ = [
    "SCHEDULES",
    "DiffusionSchedule",
    "VEDenoiser",
    "build_schedule",
    "sample_training_sigma",
]


# denoise(x_t: (B, *shape), sigma: ()) -> E[x | x_t]: (B, *shape), in VE coordinates.
VEDenoise = Callable[[Tensor, Tensor], Tensor]


class DiffusionSchedule(AzulaSchedule):
    """An azula schedule that also knows its VE-equivalent noise level.

    Calling it gives azula's (alpha_t, sigma_t); `sigma(t)` gives sigma_t / alpha_t.
    """

    def __init__(self, name: str, base: AzulaSchedule, sigma_min: float, sigma_max: float):
        self.name = name
        self.base = base
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max

    def __call__(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """t: (*) -> (alpha_t, sigma_t), each (*)."""
        return self.base(t)

    def sigma(self, t: Tensor) -> Tensor:
        """t: (*) -> VE noise level sigma_t / alpha_t: (*), sigma_min at t = 0, sigma_max at 1."""
        alpha_t, sigma_t = self.base(t)
        return sigma_t / alpha_t

    def __repr__(self) -> str:
        return (
            f"DiffusionSchedule({self.name!r}, sigma_min={self.sigma_min}, "
            f"sigma_max={self.sigma_max})"
        )


def build_schedule(name: str, sigma_min: float, sigma_max: float) -> DiffusionSchedule:
    """The schedule `name` spanning VE noise levels [sigma_min, sigma_max].

    Raises ValueError unless `check_schedule` accepts the arguments.

    Arguments:
        name: one of SCHEDULES.
        sigma_min: the VE noise level at t = 0.
        sigma_max: the VE noise level at t = 1.

    Returns:
        The schedule: (alpha_t, sigma_t) when called, sigma_t / alpha_t from `.sigma(t)`.
    """
    check_schedule(name, sigma_min, sigma_max)
    if name == "rectified":
        # alpha_1 = 1 / sigma_max and sigma_0 = sigma_min make sigma_t / alpha_t span the
        # VE range (check_schedule ensures sigma_min < 1 < sigma_max).
        base = RectifiedSchedule(alpha_min=1 / sigma_max, sigma_min=sigma_min)
    else:
        base = VESchedule(sigma_min=sigma_min, sigma_max=sigma_max)
    return DiffusionSchedule(name, base, sigma_min, sigma_max)


def sample_training_sigma(
    schedule: DiffusionSchedule,
    batch: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """VE noise levels for training: t ~ U(0, 1) mapped through `schedule.sigma`.

    Arguments:
        schedule: the training schedule.
        batch: B, the number of noise levels.
        generator: the generator t is drawn from; torch's global one when None.
        device: where to draw.

    Returns:
        sigma: (B,).
    """
    t = torch.rand(batch, generator=generator, device=device)
    return schedule.sigma(t)


class VEDenoiser(AzulaDenoiser):
    """Our VE denoiser seen through an azula schedule.

    mean(x_t, t) = denoise(x_t / alpha_t, sigma_t / alpha_t), since x_t / alpha_t = x + (sigma_t
    / alpha_t) eps is exactly a VE-noised state. The output is cast back to x_t's dtype so
    that only the denoiser itself may run in reduced precision.
    """

    def __init__(self, denoise: VEDenoise, schedule: DiffusionSchedule):
        super().__init__()
        self.denoise = denoise
        self.schedule = schedule

    def forward(self, x_t: Tensor, t: Tensor, **kwargs) -> DiracPosterior:
        """Denoise x_t at time t with our VE denoiser.

        Arguments:
            x_t: (B, *shape) noisy states, alpha_t x + sigma_t eps.
            t: () the time.
            kwargs: passed on to `denoise`.

        Returns:
            The Dirac posterior at E[x | x_t]: (B, *shape), in x_t's dtype.
        """
        alpha_t, sigma_t = self.schedule(t)
        sigma = (sigma_t / alpha_t).to(x_t.dtype)
        mean = self.denoise(x_t / alpha_t, sigma, **kwargs)
        return DiracPosterior(mean=mean.to(x_t.dtype))

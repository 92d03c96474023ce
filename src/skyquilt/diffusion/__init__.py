"""Diffusion: noise schedules and reverse samplers for the VE (EDM-style) denoiser."""

from .samplers import SAMPLERS, Sampler, build_sampler, init_noise, resolve_options
from .schedules import (
    SCHEDULES,
    DiffusionSchedule,
    VEDenoiser,
    build_schedule,
    sample_training_sigma,
)

__all__ = [
    "SAMPLERS",
    "SCHEDULES",
    "DiffusionSchedule",
    "Sampler",
    "VEDenoiser",
    "build_sampler",
    "build_schedule",
    "init_noise",
    "resolve_options",
    "sample_training_sigma",
]

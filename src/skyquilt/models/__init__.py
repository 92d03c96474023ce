"""Denoisers: the built-in blanket backbone, EDM preconditioning and model directories."""

from skyquilt.models.directory import (
    ModelConfig,
    ModelDirectory,
    load_denoiser,
    read_model_config,
    write_model_directory,
    write_random_model,
)
from skyquilt.models.precondition import BlanketDenoiser, denoising_loss
from skyquilt.models.registry import build_backbone

__all__ = [
    "BlanketDenoiser",
    "ModelConfig",
    "ModelDirectory",
    "build_backbone",
    "denoising_loss",
    "load_denoiser",
    "read_model_config",
    "write_model_directory",
    "write_random_model",
]

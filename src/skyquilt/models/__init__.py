"""Denoisers: the built-in blanket backbone, EDM preconditioning and model directories.

Names are resolved lazily (PEP 562) so that `skyquilt.models.config`, which the workflow
reads when it is parsed, can be imported without importing torch.
"""

import importlib

_EXPORTS = {
    "BlanketDenoiser": "skyquilt.models.precondition",
    "denoising_loss": "skyquilt.models.precondition",
    "build_backbone": "skyquilt.models.registry",
    "ModelConfig": "skyquilt.models.config",
    "ModelDirectory": "skyquilt.models.config",
    "read_model_config": "skyquilt.models.config",
    "load_denoiser": "skyquilt.models.directory",
    "write_model_directory": "skyquilt.models.directory",
    "write_random_model": "skyquilt.models.directory",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'skyquilt.models' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

"""Backbone architectures by name, or a user's own by import path `package.module:factory`.

A factory is called as `factory(latent_shape, blanket_size, **kwargs)` and returns a module
whose forward maps (x: (B, K, C, H, W), c_noise: (B,), time_features: (B, K, 4)) to
(B, K, C, H, W).
"""

import importlib
from collections.abc import Callable

from torch import nn

from skyquilt.models.blanket_net import BlanketNet

Factory = Callable[..., nn.Module]

ARCHITECTURES: dict[str, Factory] = {"blanket_net": BlanketNet}


def resolve_factory(name: str) -> Factory:
    """The factory registered as `name`, or imported from `package.module:factory`."""
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    if ":" not in name:
        raise ValueError(
            f"unknown backbone {name!r}; use one of {', '.join(ARCHITECTURES)} "
            "or an import path 'package.module:factory'"
        )
    module_name, _, attribute = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"backbone {name!r} cannot be imported: {error}") from error
    if not callable(factory):
        raise ValueError(f"backbone {name!r} is not callable")
    return factory


def build_backbone(
    name: str, latent_shape: tuple[int, int, int], blanket_size: int, kwargs: dict
) -> nn.Module:
    """Instantiate the backbone `name` for blankets of `blanket_size` latent states."""
    return resolve_factory(name)(tuple(latent_shape), blanket_size, **kwargs)

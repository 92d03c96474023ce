"""Backbone architectures by name, or a user's own by import path `package.module:factory`.

A factory is called as `factory(latent_shape, blanket_size, **kwargs)` and returns a module
whose forward maps (x: (B, K, C, H, W), c_noise: (B,), time_features: (B, K, 4)) to
(B, K, C, H, W).

An import path is code from outside skyquilt: it is imported only with the user's consent
(`trust`: true, or a list of module prefixes; the config key `trust_model_code`), checked
here, before the import, by `skyquilt.models.checkpoints.check_code_consent`.
"""

import importlib
from collections.abc import Callable, Sequence

from torch import nn

from skyquilt.models.blanket_net import BlanketNet
from skyquilt.models.checkpoints import BUILT_IN_SHAPES, check_code_consent

Factory = Callable[..., nn.Module]

ARCHITECTURES: dict[str, Factory] = {"blanket_net": BlanketNet}
Trust = bool | Sequence[str] | None
if set(ARCHITECTURES) != set(BUILT_IN_SHAPES):
    raise ImportError("every built-in architecture needs its shapes in models.checkpoints")


def resolve_factory(name: str, trust: Trust = False, source: str = "the model config") -> Factory:
    """The factory registered as `name`, or imported from `package.module:factory`.

    An import path is imported only when `trust` allows its module (true, or a list of
    module prefixes); otherwise ModelError names the module and the config key that allows it.
    source: the model config that names the backbone, for messages.
    """
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    if ":" not in name:
        raise ValueError(
            f"unknown backbone {name!r}; use one of {', '.join(ARCHITECTURES)} "
            "or an import path 'package.module:factory'"
        )
    check_code_consent(name, trust, source)
    module_name, _, attribute = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"backbone {name!r} cannot be imported: {error}") from error
    if not callable(factory):
        raise ValueError(f"backbone {name!r} is not callable")
    return factory


def build_backbone(
    name: str,
    latent_shape: tuple[int, int, int],
    blanket_size: int,
    kwargs: dict,
    trust: Trust = False,
    source: str = "the model config",
) -> nn.Module:
    """Instantiate the backbone `name` for blankets of `blanket_size` latent states.

    trust: consent to import a backbone named by import path (see `resolve_factory`).
    """
    return resolve_factory(name, trust, source)(tuple(latent_shape), blanket_size, **kwargs)

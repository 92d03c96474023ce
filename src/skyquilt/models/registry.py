"""Backbone architectures by name, or a user's own by import path `package.module:factory`.

A factory is called as `factory(latent_shape, blanket_size, **kwargs)` (kwargs: the model
config's `backbone.kwargs`) and returns a `Backbone`: a torch module whose forward maps
(x: (B, K, C, H, W), c_noise: (B,), time_features: (B, K, 4)) to (B, K, C, H, W).

An import path is code from outside skyquilt: it is imported only with the user's consent
(`trust`: true, or a list of module prefixes; the config key `trust_model_code`), checked
here, before the import, by `skyquilt.models.backbones.check_code_consent`.
"""

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn

from skyquilt.models.backbones import BUILT_IN_OPTIONS, check_code_consent
from skyquilt.models.blanket_net import BlanketNet


@runtime_checkable
class Backbone(Protocol):
    """What skyquilt asks of a backbone, built-in or plug-in: a `torch.nn.Module` (its weights
    are saved with `state_dict` and loaded with `load_state_dict`) that the preconditioning
    (skyquilt.models.precondition.BlanketDenoiser) calls on a batch of blankets.

    Arguments:
        x: (B, K, C, H, W) preconditioned blankets c_in x_t: B blankets of K = blanket_size
            latent states of shape latent_shape = (C, H, W).
        c_noise: (B,) preconditioned noise levels, log(sigma) / 4.
        time_features: (B, K, 4) calendar features of each state (skyquilt.models.calendar).

    Returns:
        F: (B, K, C, H, W), the network's output; the denoised blankets are
        c_skip x_t + c_out F.
    """

    def __call__(self, x: Tensor, c_noise: Tensor, time_features: Tensor) -> Tensor:
        """F(x, c_noise, time_features): (B, K, C, H, W)."""

    def state_dict(self, *args: Any, **kwargs: Any) -> Mapping[str, Tensor]:
        """Name -> tensor of every weight."""

    def load_state_dict(self, state_dict: Mapping[str, Tensor], strict: bool = True) -> Any:
        """Take the weights of `state_dict`."""


# A backbone's factory: factory(latent_shape, blanket_size, **kwargs) -> Backbone.
Factory = Callable[..., Backbone]

ARCHITECTURES: dict[str, Factory] = {"blanket_net": BlanketNet}
Trust = bool | Sequence[str] | None
if set(ARCHITECTURES) != set(BUILT_IN_OPTIONS):
    raise ImportError("every built-in architecture needs its options in models.backbones")


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
) -> Backbone:
    """Instantiate the backbone `name` for blankets of `blanket_size` latent states.

    trust: consent to import a backbone named by import path (see `resolve_factory`).
    Raises ValueError when the factory builds something that is not a Backbone module.
    """
    backbone = resolve_factory(name, trust, source)(tuple(latent_shape), blanket_size, **kwargs)
    if not isinstance(backbone, nn.Module) or not isinstance(backbone, Backbone):
        raise ValueError(
            f"backbone {name!r} of {source} built a {type(backbone).__name__}, not a "
            "torch.nn.Module (skyquilt.models.registry.Backbone)"
        )
    return backbone

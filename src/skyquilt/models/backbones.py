"""The backbones a model config may name, checked without torch or the backbone's code.

- `expected_shapes`: name -> shape of the denoiser's state dict for a built-in architecture,
  computed from the model config alone (`tests/unit/models` compares it with the module).
- `check_code_consent`: an architecture named by import path is code; it is imported only if
  the user's config consents (`trust_model_code`), the way model hubs treat remote code.

The modules themselves, and the `Backbone` protocol a plug-in meets, are in
`skyquilt.models.registry`.
"""

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from skyquilt.models.blanket_net_options import BlanketNetOptions, Shape
from skyquilt.models.config import ModelConfig, ModelError
from skyquilt.models.weight_files import reason_of

CONSENT_KEY = "trust_model_code"
# The built-in architectures (skyquilt.models.registry.ARCHITECTURES), by their options.
BUILT_IN_OPTIONS: dict[str, type[BlanketNetOptions]] = {"blanket_net": BlanketNetOptions}
# The denoiser (skyquilt.models.precondition.BlanketDenoiser) holds the backbone as `backbone`.
BACKBONE_PREFIX = "backbone."


def expected_shapes(config: ModelConfig, source: Path | str) -> dict[str, Shape] | None:
    """The denoiser's state dict for `config` (name -> shape); None for a plug-in backbone.

    Raises ModelError naming `source` (the config file) when the kwargs do not fit.
    """
    options = BUILT_IN_OPTIONS.get(config.backbone)
    if options is None:
        return None
    try:
        backbone = options(**config.backbone_kwargs).state_shapes(config.latent_shape)
    except (TypeError, ValueError) as error:
        allowed = [field.name for field in dataclasses.fields(options)]
        raise ModelError(
            f"model config {source}: backbone.kwargs {config.backbone_kwargs} do not fit "
            f"{config.backbone} ({reason_of(error)}); allowed: {', '.join(allowed)}"
        ) from None
    return {BACKBONE_PREFIX + name: shape for name, shape in backbone.items()}


def code_module(backbone: str) -> str | None:
    """The module a backbone named by import path `package.module:factory` comes from."""
    return backbone.partition(":")[0] if ":" in backbone else None


def consents(trust: bool | Sequence[str] | None, module: str) -> bool:
    """Whether `trust` (true, or module prefixes) allows importing `module`."""
    if trust is True:
        return True
    if not trust:
        return False
    return any(module == prefix or module.startswith(f"{prefix}.") for prefix in trust)


def check_code_consent(
    backbone: str, trust: bool | Sequence[str] | None, source: Path | str
) -> None:
    """Raise ModelError unless `backbone` is built in or its module is trusted.

    source: the model config that names it. The message names the module and the key.
    """
    if backbone in BUILT_IN_OPTIONS:
        return
    module = code_module(backbone)
    if module is None:
        raise ModelError(
            f"model config {source}: backbone {backbone!r} is not a built-in architecture "
            f"({', '.join(BUILT_IN_OPTIONS)}) nor an import path 'package.module:factory'"
        )
    if consents(trust, module):
        return
    value = "not set" if trust is None else json.dumps(trust if trust is False else list(trust))
    top = module.split(".")[0]
    raise ModelError(
        f"{CONSENT_KEY}: {value}, but backbone {backbone!r} of {source} is code from module "
        f"{module!r}, imported only with consent: set {CONSENT_KEY}: true, or list {top!r} "
        "(or a prefix of the module) in it"
    )

"""The model a run samples from, checked when the workflow is parsed: its config and weights.

Reads only the model's config.yaml and the headers of its weights and latent statistics (the
tensors' names and shapes, never their data), so that a dry run of tens of thousands of
members stays fast. Never imports a model's code: an architecture named by import path is
only checked against the config's consent (`trust_model_code`).
"""

import os
from pathlib import Path

from skyquilt.io.fingerprints import FingerprintError, files_record
from skyquilt.models.backbones import CONSENT_KEY, check_code_consent, expected_shapes
from skyquilt.models.config import (
    TARGETS,
    ModelConfig,
    ModelDirectory,
    ModelError,
    read_model_config,
)
from skyquilt.models.weight_files import mismatch, tensor_shapes
from skyquilt.planning.errors import ConfigError
from skyquilt.sampling.blankets import blocks_fit

COMPOSITION_KEY = "generation.composition"


def model_config_for(config: dict, built_by_workflow: dict[str, ModelConfig]) -> ModelConfig:
    """The model config at `model_path`, or the one the workflow will build there.

    A missing model directory is an error unless the workflow itself builds it (the demo).
    """
    model_path = str(config["model_path"])
    directory = ModelDirectory(Path(model_path))
    if os.path.isfile(model_path):
        raise ConfigError(
            f"model_path: {model_path!r} is a file; it must be the model directory "
            "<latent_dir>/denoisers/<denoiser>/<lap> that holds config.yaml"
        )
    if directory.config_file.is_file():
        try:
            return read_model_config(directory.config_file)
        except ModelError as error:
            raise ConfigError(f"model_path: {error}") from None
    normalised = os.path.normpath(model_path)
    for built_path, model in built_by_workflow.items():
        if os.path.normpath(built_path) == normalised:
            return model
    raise ConfigError(
        f"model_path: {model_path!r} has no config.yaml; point it at a model directory "
        "<latent_dir>/denoisers/<denoiser>/<lap> (or at the demo model, which the workflow builds)"
    )


def code_consent(config: dict) -> bool | tuple[str, ...]:
    """The config's consent to import a model's code: `trust_model_code`, true or prefixes."""
    trust = config.get(CONSENT_KEY) or False
    return tuple(trust) if isinstance(trust, list) else bool(trust)


def check_weights(config: dict, model_is_built: bool, model: ModelConfig | None = None) -> None:
    """The requested best/last checkpoint exists and is complete, and fits `model`.

    With `model` (the config at model_path): its backbone is built in or its code is
    allowed by `trust_model_code`; the checkpoint's tensors are those of the built-in
    architecture for latent_shape and backbone.kwargs (a plug-in architecture cannot be
    known without running its code: its weights are checked when the job loads them); the
    latent statistics, if present, have shape latent_shape. A model the workflow builds is
    checked for consent only.
    """
    directory = ModelDirectory(Path(config["model_path"]))
    if model is not None:
        try:
            check_code_consent(model.backbone, config.get(CONSENT_KEY), directory.config_file)
        except ModelError as error:
            key = "" if str(error).startswith(CONSENT_KEY) else "model_path: "
            raise ConfigError(f"{key}{error}") from None
    if model_is_built:
        return
    weights = directory.weights_file(config["model_target"])
    if not weights.is_file():
        raise ConfigError(
            f"model_target: checkpoint {weights} is missing; "
            f"allowed targets are {', '.join(TARGETS)} where their weights exist"
        )
    try:
        found = tensor_shapes(weights)
    except ModelError as error:
        raise ConfigError(f"model_target: {error}") from None
    if model is not None:
        check_model_files(directory, model, weights, found)


def check_model_files(
    directory: ModelDirectory, model: ModelConfig, weights: Path, found: dict
) -> None:
    """The checkpoint's tensors (`found`) and the latent statistics fit the model config."""
    try:
        expected = expected_shapes(model, directory.config_file)
    except ModelError as error:
        raise ConfigError(f"model_path: {error}") from None
    problems = mismatch(expected, found) if expected is not None else None
    if problems:
        raise ConfigError(
            f"model_path: checkpoint {weights} does not fit {directory.config_file} "
            f"(latent_shape {list(model.latent_shape)}, backbone {model.backbone} "
            f"{model.backbone_kwargs}): {problems}"
        )
    if not directory.stats_file.exists():
        return  # only decoding reads it, and checks it then
    try:
        stats = tensor_shapes(directory.stats_file)
    except ModelError as error:
        raise ConfigError(f"model_path: latent statistics: {error}") from None
    for name in ("mean", "std"):
        if tuple(stats.get(name, ())) != tuple(model.latent_shape):
            shape = list(stats[name]) if name in stats else "missing"
            raise ConfigError(
                f"model_path: latent_shape {list(model.latent_shape)} of "
                f"{directory.config_file} does not match '{name}' of the latent statistics "
                f"{directory.stats_file} ({shape}); they must be the same [C, H, W]"
            )


def denoiser_fingerprint(model_path: str, target: str, composition: str = "blankets") -> str:
    """The content fingerprint of what a member composed by `composition` reads from a model
    directory: its config.yaml and `target` weights, and its coarse model's for two_scale (see
    skyquilt.io.fingerprints: read once, then cached by the files' stamps)."""
    files = ModelDirectory(Path(model_path)).denoiser_files(target, composition)
    try:
        return files_record(files)["fingerprint"]
    except FingerprintError as error:
        raise ConfigError(f"model_path: {error}") from None


def resolve_composition(config: dict, model: ModelConfig) -> tuple[str, list[str]]:
    """generation.composition for this model and overlap, and warnings: auto is two_scale
    where the model declares a coarse model whose blocks fit the blankets, else blankets.

    two_scale asked of a model without a coarse model, or with blocks that do not divide the
    blanket size and the overlap, is refused in one line naming the model and what it lacks.
    """
    asked = (config.get("generation") or {}).get("composition", "auto")
    overlap, model_path = int(config["blanket_overlap"]), config["model_path"]
    if model.coarse is None:
        if asked == "two_scale":
            raise ConfigError(
                f"{COMPOSITION_KEY}: two_scale needs a coarse model, and the model at "
                f"{model_path} declares none (its config.yaml has no 'coarse' section; "
                "docs/composition.md says how to train one); use blankets or auto"
            )
        return "blankets", []
    block = model.coarse.block
    if blocks_fit(model.blanket_size, overlap, block):
        return ("blankets" if asked == "blankets" else "two_scale"), []
    problem = (
        f"blocks of {block} states (coarse.block of the model at {model_path}) do not divide "
        f"its blanket size {model.blanket_size} and blanket_overlap {overlap}"
    )
    if asked == "two_scale":
        raise ConfigError(f"{COMPOSITION_KEY}: two_scale needs {problem}; choose such an overlap")
    if asked == "auto":
        return "blankets", [f"{COMPOSITION_KEY}: auto composes blankets alone: {problem}"]
    return "blankets", []


def coarse_model_for(
    config: dict, model: ModelConfig, built_by_workflow: dict[str, ModelConfig]
) -> ModelConfig:
    """The coarse model that `model` declares, checked like the model itself (its config, its
    checkpoint), and that it models block means of the model's states: the same latent shape,
    states `coarse.block` times the model's blanket_dt apart.
    """
    coarse_path = str(ModelDirectory(Path(config["model_path"])).coarse_path(model))
    coarse_config = {**config, "model_path": coarse_path}
    coarse_is_built = not ModelDirectory(Path(coarse_path)).config_file.is_file()
    if coarse_is_built and not any(
        os.path.normpath(path) == os.path.normpath(coarse_path) for path in built_by_workflow
    ):
        raise ConfigError(
            f"{COMPOSITION_KEY}: two_scale needs the coarse model that the model at "
            f"{config['model_path']} declares (coarse.path in its config.yaml), and "
            f"{coarse_path} has no config.yaml"
        )
    coarse = model_config_for(coarse_config, built_by_workflow)
    check_weights(coarse_config, coarse_is_built, coarse)
    expected_dt = model.blanket_dt * model.coarse.block
    if coarse.latent_shape != model.latent_shape or coarse.blanket_dt != expected_dt:
        raise ConfigError(
            f"{COMPOSITION_KEY}: the coarse model at {coarse_path} must model block means of "
            f"the model's states: latent_shape {list(model.latent_shape)} and "
            f"train.blanket_dt {expected_dt}, not {list(coarse.latent_shape)} and "
            f"{coarse.blanket_dt}"
        )
    return coarse

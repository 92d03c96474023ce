"""The model a run samples from, checked when the workflow is parsed: its config and weights.

Reads only the model's config.yaml and the weights file's header, so that a dry run of tens
of thousands of members stays fast.
"""

import os
from pathlib import Path

from skyquilt.models.config import (
    TARGETS,
    ModelConfig,
    ModelDirectory,
    ModelError,
    check_checkpoint_file,
    read_model_config,
)
from skyquilt.planning.config import ConfigError


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


def check_weights(config: dict, model_is_built: bool) -> None:
    """The requested best/last checkpoint exists (unless the workflow builds the model)."""
    if model_is_built:
        return
    directory = ModelDirectory(Path(config["model_path"]))
    weights = directory.weights_file(config["model_target"])
    if not weights.is_file():
        raise ConfigError(
            f"model_target: checkpoint {weights} is missing; "
            f"allowed targets are {', '.join(TARGETS)} where their weights exist"
        )
    try:
        check_checkpoint_file(weights)
    except ModelError as error:
        raise ConfigError(f"model_target: {error}") from None

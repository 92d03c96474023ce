"""Model directories: configs, weights and latent statistics, loaded and saved safely.

    <latent_dir>/denoisers/<denoiser>/<lap>/     = model_path: config.yaml, best + last weights
    latent_dir = model_path.parents[2]           : stats.safetensors, ae/, latents.zarr

Weights are read with safetensors, or with `torch.load(weights_only=True)` for `.pt` files,
so a checkpoint can never run code when it is loaded.
"""

import pickle
from pathlib import Path

import safetensors.torch
import torch
from torch import nn

from skyquilt.io.atomic import atomic_file, write_yaml
from skyquilt.models.config import ModelConfig, ModelDirectory, ModelError, read_model_config
from skyquilt.models.precondition import BlanketDenoiser
from skyquilt.models.registry import Trust, build_backbone
from skyquilt.models.weight_files import mismatch


def load_state_dict(weights_file: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint, without unpickling arbitrary objects."""
    weights_file = Path(weights_file)
    if not weights_file.is_file():
        raise ModelError(f"checkpoint {weights_file} does not exist")
    try:
        if weights_file.suffix == ".safetensors":
            return safetensors.torch.load_file(weights_file)
        return torch.load(weights_file, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise ModelError(
            f"checkpoint {weights_file} cannot be loaded safely ({first_line}); "
            "save it as safetensors or a plain state dict"
        ) from error
    except Exception as error:  # safetensors raises its own error type for corrupt headers
        raise ModelError(f"checkpoint {weights_file} is corrupt: {error}") from error


def build_denoiser(
    config: ModelConfig, trust: Trust = False, source: str = "the model config"
) -> BlanketDenoiser:
    """An untrained preconditioned denoiser with the architecture of `config`.

    trust: consent to import a backbone named by import path (`trust_model_code`).
    """
    backbone = build_backbone(
        config.backbone,
        config.latent_shape,
        config.blanket_size,
        config.backbone_kwargs,
        trust,
        source,
    )
    return BlanketDenoiser(backbone)


def load_denoiser(
    model_path: Path, target: str = "best", trust: Trust = False
) -> tuple[BlanketDenoiser, ModelConfig]:
    """The denoiser of a model directory with its `best` or `last` weights, in eval mode.

    Raises ModelError naming the file when the config or the checkpoint cannot be used, or
    when the config names a backbone by import path that `trust` does not allow.

    Arguments:
        model_path: the model directory, <latent_dir>/denoisers/<denoiser>/<lap>.
        target: "best" or "last".
        trust: consent to import the backbone's code (true, or module prefixes).

    Returns:
        The denoiser, (x_t: (B, K, C, H, W), sigma: (B,), time_features: (B, K, 4)) ->
        (B, K, C, H, W), and its config.
    """
    directory = ModelDirectory(Path(model_path))
    config = read_model_config(directory.config_file)
    denoiser = build_denoiser(config, trust, str(directory.config_file))
    weights_file = directory.weights_file(target)
    state = load_state_dict(weights_file)
    expected = {name: tuple(value.shape) for name, value in denoiser.state_dict().items()}
    problems = mismatch(expected, {name: tuple(value.shape) for name, value in state.items()})
    if problems:
        raise ModelError(
            f"checkpoint {weights_file} does not fit the architecture of "
            f"{directory.config_file}: {problems}"
        )
    denoiser.load_state_dict(state)
    return denoiser.eval(), config


def load_coarse_denoiser(
    model_path: Path, model: ModelConfig, target: str = "best", trust: Trust = False
) -> tuple[BlanketDenoiser, ModelConfig]:
    """The coarse model that `model` (the config at `model_path`) declares, with its `target`
    weights, in eval mode; see `load_denoiser`. Raises ModelError when it declares none."""
    coarse_path = ModelDirectory(Path(model_path)).coarse_path(model)
    if coarse_path is None:
        raise ModelError(
            f"model config {Path(model_path) / 'config.yaml'} declares no coarse model"
        )
    return load_denoiser(coarse_path, target, trust)


def save_tensors(tensors: dict[str, torch.Tensor], path: Path | str) -> None:
    """Write named tensors as safetensors, atomically."""
    contiguous = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    with atomic_file(path) as temporary:
        safetensors.torch.save_file(contiguous, temporary)


def save_state_dict(module: nn.Module, weights_file: Path) -> None:
    """Write a module's weights as safetensors, atomically."""
    save_tensors(module.state_dict(), weights_file)


def write_model_directory(
    model_path: Path,
    config: dict,
    best: nn.Module,
    last: nn.Module | None = None,
    latent_mean: torch.Tensor | None = None,
    latent_std: torch.Tensor | None = None,
) -> Path:
    """Write config.yaml, best/last weights and, if given, the latent statistics.

    Arguments:
        model_path: the model directory, <latent_dir>/denoisers/<denoiser>/<lap>.
        config: the denoiser's config.yaml, as a mapping.
        best: the module whose weights are `best`.
        last: the module whose weights are `last`; `best` when None.
        latent_mean, latent_std: (C, h, w) each, written to <latent_dir>/stats.safetensors
            when both are given.

    Returns:
        model_path.
    """
    model_path = Path(model_path)
    directory = ModelDirectory(model_path)
    write_yaml(config, directory.config_file)
    save_state_dict(best, directory.weights_file("best"))
    save_state_dict(last if last is not None else best, directory.weights_file("last"))
    if latent_mean is not None and latent_std is not None:
        save_tensors({"mean": latent_mean, "std": latent_std}, directory.stats_file)
    return model_path

"""Model directories (DESIGN.md §3): configs, weights and latent statistics, loaded safely.

    <latent_dir>/denoisers/<denoiser>/<lap>/     = model_path: config.yaml, best + last weights
    latent_dir = model_path.parents[2]           : stats.safetensors, ae/, latents.zarr

Weights are read with safetensors, or with `torch.load(weights_only=True)` for `.pt` files,
so a checkpoint can never run code when it is loaded.
"""

import pickle
from pathlib import Path

import safetensors.torch
import torch
import yaml
from torch import nn

from skyquilt.models.config import (
    PRECISIONS,
    REQUIRED_KEYS,
    TARGETS,
    ModelConfig,
    ModelDirectory,
    ModelError,
    check_checkpoint_file,
    parse_model_config,
    read_model_config,
)
from skyquilt.models.precondition import BlanketDenoiser
from skyquilt.models.registry import build_backbone
from skyquilt.stores import atomic_file


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


def build_denoiser(config: ModelConfig) -> BlanketDenoiser:
    """An untrained preconditioned denoiser with the architecture of `config`."""
    backbone = build_backbone(
        config.backbone, config.latent_shape, config.blanket_size, config.backbone_kwargs
    )
    return BlanketDenoiser(backbone)


def load_denoiser(model_path: Path, target: str = "best") -> tuple[BlanketDenoiser, ModelConfig]:
    """The denoiser of a model directory with its `best` or `last` weights, in eval mode."""
    directory = ModelDirectory(Path(model_path))
    config = read_model_config(directory.config_file)
    denoiser = build_denoiser(config)
    weights_file = directory.weights_file(target)
    try:
        denoiser.load_state_dict(load_state_dict(weights_file))
    except RuntimeError as error:
        raise ModelError(
            f"checkpoint {weights_file} does not fit the architecture of {directory.config_file}: "
            f"{str(error).splitlines()[0]}"
        ) from error
    return denoiser.eval(), config


def save_state_dict(module: nn.Module, weights_file: Path) -> None:
    """Write a module's weights as safetensors atomically (temporary file + rename)."""
    state = {
        name: tensor.detach().cpu().contiguous() for name, tensor in module.state_dict().items()
    }
    with atomic_file(weights_file) as temporary:
        safetensors.torch.save_file(state, temporary)


def write_yaml(data: dict, path: Path) -> None:
    """Write a YAML file atomically."""
    with atomic_file(path) as temporary:
        temporary.write_text(yaml.safe_dump(data, sort_keys=False))


def write_model_directory(
    model_path: Path,
    config: dict,
    best: nn.Module,
    last: nn.Module | None = None,
    latent_mean: torch.Tensor | None = None,
    latent_std: torch.Tensor | None = None,
) -> Path:
    """Write config.yaml, best/last weights and, if given, the latent statistics."""
    model_path = Path(model_path)
    directory = ModelDirectory(model_path)
    write_yaml(config, directory.config_file)
    save_state_dict(best, directory.weights_file("best"))
    save_state_dict(last if last is not None else best, directory.weights_file("last"))
    if latent_mean is not None and latent_std is not None:
        directory.stats_file.parent.mkdir(parents=True, exist_ok=True)
        safetensors.torch.save_file(
            {"mean": latent_mean.contiguous(), "std": latent_std.contiguous()},
            directory.stats_file,
        )
    return model_path


def random_model_config(
    latent_shape: tuple[int, int, int] = (2, 4, 8),
    blanket_size: int = 8,
    denoising_steps: int = 8,
    hidden_channels: int = 8,
    blocks: int = 1,
) -> dict:
    """A complete denoiser config for a tiny built-in backbone."""
    return {
        "latent_shape": list(latent_shape),
        "backbone": {
            "name": "blanket_net",
            "kwargs": {"hidden_channels": hidden_channels, "blocks": blocks, "embedding": 16},
        },
        "train": {
            "blanket_size": blanket_size,
            "blanket_dt": 1,
            "noise_schedule": "rectified",
            "sigma_min": 1e-3,
            "sigma_max": 1e3,
            "precision": "float32",
        },
        "valid": {"denoising_steps": denoising_steps},
    }


def write_random_model(root: Path, seed: int = 0, **config_overrides) -> Path:
    """A complete model directory under `root` with random weights, for tests.

    Returns model_path = root/autoencoders/ae/0/latents/dump/denoisers/denoiser/0.
    """
    config = random_model_config(**config_overrides)
    model_path = Path(root) / "autoencoders/ae/0/latents/dump/denoisers/denoiser/0"
    torch.manual_seed(seed)
    denoiser = build_denoiser(parse_model_config(config))
    for parameter in denoiser.parameters():
        # Random, non-zero output layers so that the network is not an identity map.
        nn.init.normal_(parameter, std=0.1)
    shape = tuple(config["latent_shape"])
    return write_model_directory(
        model_path, config, denoiser, latent_mean=torch.zeros(shape), latent_std=torch.ones(shape)
    )


__all__ = [
    "PRECISIONS",
    "REQUIRED_KEYS",
    "TARGETS",
    "ModelConfig",
    "ModelDirectory",
    "ModelError",
    "build_denoiser",
    "check_checkpoint_file",
    "load_denoiser",
    "load_state_dict",
    "parse_model_config",
    "random_model_config",
    "read_model_config",
    "save_state_dict",
    "write_model_directory",
    "write_random_model",
    "write_yaml",
]

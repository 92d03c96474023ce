"""Model directories: configs, the architecture registry, EDM preconditioning, safe loading."""

import pickle

import pytest
import torch
import yaml
from skyquilt_testing.models import random_model_config

from skyquilt.models.config import ModelDirectory, ModelError, read_model_config
from skyquilt.models.precondition import BlanketDenoiser
from skyquilt.models.registry import build_backbone, resolve_factory
from skyquilt.models.weights import load_denoiser, load_state_dict


def test_latent_dir_is_two_levels_above_the_denoiser(tiny_model):
    directory = ModelDirectory(tiny_model)
    assert directory.latent_dir == tiny_model.parents[2]
    assert directory.latent_dir.name == "dump"
    assert directory.stats_file.is_file()


def test_random_model_loads_with_both_targets(tiny_model):
    best, config = load_denoiser(tiny_model, "best")
    last, _ = load_denoiser(tiny_model, "last")
    assert config.blanket_size == 8 and config.latent_shape == (2, 4, 8)
    for a, b in zip(best.parameters(), last.parameters(), strict=True):
        assert torch.equal(a, b)


def test_denoiser_maps_blankets_to_blankets(tiny_model):
    denoiser, config = load_denoiser(tiny_model)
    x = torch.randn(3, config.blanket_size, *config.latent_shape)
    output = denoiser(x, torch.tensor([0.01, 1.0, 100.0]), torch.randn(3, config.blanket_size, 4))
    assert output.shape == x.shape and torch.isfinite(output).all()


def test_preconditioning_returns_the_input_at_tiny_noise():
    """c_skip -> 1 and c_out -> 0 as sigma -> 0, so D(x, sigma) -> x."""
    backbone = build_backbone("blanket_net", (2, 4, 8), 8, {"hidden_channels": 8, "blocks": 1})
    denoiser = BlanketDenoiser(backbone)
    x = torch.randn(2, 8, 2, 4, 8)
    output = denoiser(x, torch.full((2,), 1e-6), torch.zeros(2, 8, 4))
    assert torch.allclose(output, x, atol=1e-4)


def test_user_architecture_by_import_path():
    factory = resolve_factory("skyquilt.models.blanket_net:BlanketNet", trust=["skyquilt.models"])
    assert factory(latent_shape=(2, 4, 8), blanket_size=8) is not None


def test_architecture_by_import_path_needs_consent():
    with pytest.raises(ModelError, match="trust_model_code: false.*'skyquilt.models.blanket_net'"):
        resolve_factory("skyquilt.models.blanket_net:BlanketNet")


def test_unknown_architecture_names_the_registry():
    with pytest.raises(ValueError, match="blanket_net"):
        resolve_factory("unet9000")


def test_missing_config_key_names_file_and_key(tmp_path):
    raw = random_model_config()
    del raw["train"]["blanket_size"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ModelError, match=r"config.yaml lacks required key 'train.blanket_size'"):
        read_model_config(path)


class Payload:
    """Unpickling this object would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(pickle.dumps({"weight": Payload(str(marker))}))
    with pytest.raises(ModelError, match="cannot be loaded safely"):
        load_state_dict(checkpoint)
    assert not marker.exists()


def test_truncated_checkpoint_names_the_file(tiny_model, tmp_path):
    broken = tmp_path / "best.safetensors"
    broken.write_bytes((tiny_model / "best.safetensors").read_bytes()[:100])
    with pytest.raises(ModelError, match=str(broken)):
        load_state_dict(broken)

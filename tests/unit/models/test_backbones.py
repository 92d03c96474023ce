"""The backbones a model config may name: the built-in ones' expected shapes and options,
checked without torch, and consent to import one named by import path."""

import sys

import pytest
from skyquilt_testing.models import random_model_config, state_shapes, write_random_model

from skyquilt.models.backbones import check_code_consent, expected_shapes
from skyquilt.models.config import ModelError, parse_model_config
from skyquilt.models.registry import ARCHITECTURES
from skyquilt.models.weights import build_denoiser, load_denoiser

KWARGS = [
    {"hidden_channels": 8, "blocks": 1, "embedding": 16},
    {"hidden_channels": 16, "blocks": 3, "embedding": 8},
    {"hidden_channels": 8, "blocks": 2, "embedding": 8, "dilations": [1, 4]},
    {"hidden_channels": 8, "blocks": 2, "embedding": 8, "dilations": [1, 4], "time_kernel": 5},
    {"hidden_channels": 8, "blocks": 2, "embedding": 8, "time_kernel": 7, "factorised": True},
    {},
]


@pytest.mark.parametrize("kwargs", KWARGS)
@pytest.mark.parametrize("latent_shape", [(2, 4, 8), (5, 3, 7)])
def test_expected_shapes_are_those_of_the_built_in_module(kwargs, latent_shape):
    raw = random_model_config(latent_shape=latent_shape)
    raw["backbone"]["kwargs"] = kwargs
    config = parse_model_config(raw)
    assert expected_shapes(config, "config.yaml") == state_shapes(build_denoiser(config))


def test_every_built_in_architecture_has_its_shapes():
    config = parse_model_config(random_model_config())
    for name in ARCHITECTURES:
        assert expected_shapes(config.__class__(**{**config.__dict__, "backbone": name}), "c")


def test_unknown_kwarg_names_the_file_and_what_is_allowed():
    raw = random_model_config()
    raw["backbone"]["kwargs"]["hidden"] = 3
    with pytest.raises(ModelError, match=r"config.yaml: backbone.kwargs .*hidden.*allowed: "):
        expected_shapes(parse_model_config(raw), "config.yaml")


@pytest.mark.parametrize("dilations", [[1, 2], [1, 2, 0], [1.5, 2, 4]])
def test_dilations_must_be_one_positive_integer_per_block(dilations):
    raw = random_model_config()
    raw["backbone"]["kwargs"] = {"blocks": 3, "dilations": dilations}
    with pytest.raises(ModelError, match=r"config.yaml: .*must be 3 integers >= 1, one per block"):
        expected_shapes(parse_model_config(raw), "config.yaml")


@pytest.mark.parametrize(
    ("kwargs", "allowed"),
    [
        ({"time_kernel": 4}, "time_kernel 4 must be 0 or an odd integer >= 3"),
        ({"time_kernel": 1}, "time_kernel 1 must be 0 or an odd integer >= 3"),
        ({"time_kernel": 5.0}, "time_kernel 5.0 must be 0 or an odd integer >= 3"),
        ({"factorised": True}, "factorised blocks need time_kernel >= 3"),
        (
            {"factorised": True, "time_kernel": 5, "dilations": [1, 2, 4]},
            r"dilations \[1, 2, 4\] do not apply to factorised blocks",
        ),
        (
            {"time_kernel": 5, "time_padding": "circular"},
            "time_padding 'circular' must be one of zeros, reflect",
        ),
        ({"time_padding": "reflect"}, r"time_padding 'reflect' needs time mixing \(time_kernel"),
    ],
)
def test_time_mixing_must_be_well_formed(kwargs, allowed):
    raw = random_model_config()
    raw["backbone"]["kwargs"] = {"blocks": 3} | kwargs
    with pytest.raises(ModelError, match=rf"config.yaml: .*{allowed}"):
        expected_shapes(parse_model_config(raw), "config.yaml")


@pytest.mark.parametrize(
    ("trust", "allowed"),
    [
        (None, False),
        (False, False),
        (True, True),
        (("my_models",), True),
        (("my_models.unets",), True),
        (("my_models.unets.big",), False),
        (("my_model",), False),
        (("other", "my_models"), True),
    ],
)
def test_code_consent(trust, allowed):
    name = "my_models.unets:factory"
    if allowed:
        check_code_consent(name, trust, "config.yaml")
    else:
        with pytest.raises(ModelError, match=r"trust_model_code: .*'my_models.unets'"):
            check_code_consent(name, trust, "config.yaml")
    check_code_consent("blanket_net", None, "config.yaml")  # built in: no consent needed


def test_the_loader_refuses_untrusted_code_without_importing_it(tmp_path, monkeypatch):
    """A module that leaves a marker when imported is never imported without consent."""
    marker = tmp_path / "imported"
    (tmp_path / "sneaky_backbone.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from skyquilt.models.blanket_net import BlanketNet as factory\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = write_random_model(tmp_path / "model")
    config_file = model / "config.yaml"
    text = config_file.read_text().replace("name: blanket_net", "name: sneaky_backbone:factory")
    config_file.write_text(text)
    try:
        with pytest.raises(ModelError, match="'sneaky_backbone'.*trust_model_code"):
            load_denoiser(model, "best")
        assert not marker.exists() and "sneaky_backbone" not in sys.modules
        load_denoiser(model, "best", trust=("sneaky_backbone",))
        assert marker.exists()
    finally:
        sys.modules.pop("sneaky_backbone", None)

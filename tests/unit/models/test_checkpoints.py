"""Checkpoint headers, expected shapes and code consent, read without torch or model code."""

import pickle
import sys
import zipfile

import pytest
import safetensors.torch
import torch
from skyquilt_testing.models import random_model_config, write_random_model

from skyquilt.models.blanket_net import TimeMixing
from skyquilt.models.checkpoints import (
    check_code_consent,
    expected_shapes,
    mismatch,
    tensor_shapes,
)
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


def state_shapes(module: torch.nn.Module) -> dict:
    return {name: tuple(value.shape) for name, value in module.state_dict().items()}


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
    ],
)
def test_time_mixing_must_be_well_formed(kwargs, allowed):
    raw = random_model_config()
    raw["backbone"]["kwargs"] = {"blocks": 3} | kwargs
    with pytest.raises(ModelError, match=rf"config.yaml: .*{allowed}"):
        expected_shapes(parse_model_config(raw), "config.yaml")


@pytest.mark.parametrize(("kernel", "size"), [(5, 12), (23, 12), (7, 3)])
def test_time_mixing_is_a_zero_padded_depthwise_convolution_over_time(kernel, size):
    """The banded-matrix product equals torch's depthwise Conv3d with a (kernel, 1, 1)
    kernel, also when the kernel is longer than the blanket."""
    torch.manual_seed(0)
    mixing = TimeMixing(channels=4, kernel=kernel)
    torch.nn.init.normal_(mixing.taps)
    h = torch.randn(2, 4, size, 3, 5)
    expected = torch.nn.functional.conv3d(
        h, mixing.taps.detach()[:, None, :, None, None], padding=(kernel // 2, 0, 0), groups=4
    )
    torch.testing.assert_close(mixing(h).detach(), expected)


@pytest.mark.parametrize(
    ("kwargs", "reach"),
    [
        ({"dilations": [1, 2, 4]}, 2 + 1 + 2 + 4),
        ({"dilations": [1, 2, 4], "time_kernel": 5}, 2 + 2 + 2 + 4),
        ({"time_kernel": 5, "factorised": True}, 2 + 3 * 2),
    ],
)
def test_blocks_reach_two_plus_the_sum_of_their_reaches(kwargs, reach):
    """Through its convolutions and time mixing a state's output depends on inputs reach
    states away, and none further: the encoder and decoder reach one state each, block b
    max(dilations[b], time_kernel // 2), or time_kernel // 2 when factorised. (Group
    normalisation couples every state through its statistics; it is replaced by the identity
    here, and the time-mixing taps, which start at zero, are drawn at random.)"""
    torch.manual_seed(0)
    raw = random_model_config(blanket_size=32)
    raw["backbone"]["kwargs"] = {"hidden_channels": 4, "blocks": 3, "embedding": 8} | kwargs
    backbone = build_denoiser(parse_model_config(raw)).backbone
    for block in backbone.blocks:
        block.norm = torch.nn.Identity()
        if block.time_mixing is not None:
            torch.nn.init.normal_(block.time_mixing.taps)
    shape = (1, 32, *parse_model_config(raw).latent_shape)
    x = torch.randn(shape, requires_grad=True)
    out = backbone(x, torch.zeros(1), torch.zeros(1, 32, 4))
    out[0, 16].sum().backward()
    reached = x.grad[0].abs().flatten(1).sum(dim=1).nonzero().flatten()
    assert (reached.min().item(), reached.max().item()) == (16 - reach, 16 + reach)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_header_shapes_of_both_formats(tiny_model, tmp_path, suffix):
    denoiser, _ = load_denoiser(tiny_model)
    path = tmp_path / f"best{suffix}"
    state = {name: value.contiguous() for name, value in denoiser.state_dict().items()}
    if suffix == ".pt":
        torch.save(state, path)
    else:
        safetensors.torch.save_file(state, path)
    assert tensor_shapes(path) == state_shapes(denoiser)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_checkpoints_of_both_formats_name_the_file(tiny_model, tmp_path, suffix, keep):
    denoiser, _ = load_denoiser(tiny_model)
    whole = tmp_path / f"whole{suffix}"
    state = {name: value.contiguous() for name, value in denoiser.state_dict().items()}
    torch.save(state, whole) if suffix == ".pt" else safetensors.torch.save_file(state, whole)
    data = whole.read_bytes()
    broken = tmp_path / f"best{suffix}"
    broken.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelError, match=f"checkpoint {broken} is truncated or corrupt"):
        tensor_shapes(broken)


def test_torch_archive_with_a_short_storage_record_is_refused(tiny_model, tmp_path):
    denoiser, _ = load_denoiser(tiny_model)
    whole = tmp_path / "whole.pt"
    torch.save(denoiser.state_dict(), whole)
    broken = tmp_path / "best.pt"
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(broken, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, data[:4] if info.filename.endswith("/data/0") else data)
    with pytest.raises(ModelError, match="missing or short"):
        tensor_shapes(broken)


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_the_header_reader_never_runs_a_pickled_payload(tmp_path):
    marker = tmp_path / "pwned"
    checkpoint = tmp_path / "best.pt"
    with zipfile.ZipFile(checkpoint, "w") as archive:
        archive.writestr("best/data.pkl", pickle.dumps({"weight": Payload(str(marker))}))
    with pytest.raises(ModelError, match="not part of a plain state dict"):
        tensor_shapes(checkpoint)
    assert not marker.exists()


def test_mismatch_names_missing_unexpected_and_misshaped():
    line = mismatch({"a": (1,), "b": (2, 3), "c": (4,)}, {"a": (1,), "b": (3, 2), "d": (5,)})
    assert line == "missing c; unexpected d; mis-shaped b (3, 2) instead of (2, 3)"
    assert mismatch({"a": (1,)}, {"a": (1,)}) is None


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

"""Weight-file headers, read without torch or model code, and the mismatch line."""

import pickle
import zipfile

import pytest
import safetensors.torch
import torch
from skyquilt_testing.models import state_shapes

from skyquilt.models.config import ModelError
from skyquilt.models.weight_files import mismatch, tensor_shapes
from skyquilt.models.weights import load_denoiser


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

"""Checkpoint files: what they hold, when they are written, and which are refused (another
fingerprint, a checksum that does not match, a state that is not finite)."""

import shutil

import pytest
import torch
from skyquilt_testing.files import flip_a_bit_of_the_largest_tensor

from skyquilt.models.weights import load_denoiser
from skyquilt.sampling.checkpoints import (
    FORMAT,
    Checkpointer,
    CheckpointPolicy,
    NonFiniteStateError,
    fingerprint,
    payload_checksum,
    read_checkpoint,
    save_checkpoint,
)
from skyquilt.sampling.generation import generate_member
from skyquilt.sampling.request import RunSettings

CPU = torch.device("cpu")


def request(model_path, **changes):
    settings = {
        "model_path": str(model_path), "model_target": "best", "sampler": "lms",
        "sampler_options": {}, "steps": 6, "precision": "float32", "overlap": 4,
        "stitch": "symmetric", "seed": 7, "max_blankets_per_batch": None, **changes,
    }  # fmt: skip
    return RunSettings(**settings).member(12, "2000-04-03T00", 0)


def test_fingerprint_changes_with_values_only(tiny_model):
    base = fingerprint(request(tiny_model))
    assert fingerprint(request(tiny_model, max_blankets_per_batch=2)) == base
    assert fingerprint(request(tiny_model, trust_model_code=True)) == base
    for change in ({"steps": 7}, {"seed": 8}, {"sampler": "ddim"}, {"precision": "bfloat16"},
                   {"overlap": 3}, {"sampler_options": {"order": 2}}):  # fmt: skip
        assert fingerprint(request(tiny_model, **change)) != base, change


def test_two_scale_fingerprint_covers_the_coarse_model(tiny_two_scale_model, tmp_path):
    """A two-scale member's state depends on the coarse model's weights too; a member that
    composes blankets alone does not."""
    model = shutil.copytree(tiny_two_scale_model, tmp_path / "model")
    two_scale = fingerprint(request(model, composition="two_scale"))
    blankets = fingerprint(request(model))
    assert two_scale != blankets
    weights = model / "coarse" / "best.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    assert fingerprint(request(model, composition="two_scale")) != two_scale
    assert fingerprint(request(model)) == blankets


def test_a_saved_state_reads_back_with_the_rng(tiny_model, tmp_path):
    stamp = fingerprint(request(tiny_model))
    state = {"x": torch.randn(2, 3), "step": 2, "history": [torch.randn(2, 3)]}
    save_checkpoint(tmp_path / "a.pt", stamp, state, 6, CPU)
    payload, reason = read_checkpoint(tmp_path / "a.pt", stamp)
    assert reason is None and payload["steps"] == 6
    assert torch.equal(payload["state"]["x"], state["x"])
    assert torch.equal(payload["rng"]["cpu"], torch.get_rng_state())
    assert read_checkpoint(tmp_path / "a.pt", "other")[1].startswith("made for another")
    assert read_checkpoint(tmp_path / "none.pt", stamp) == (None, None)
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]  # no temporary left


def test_intervals_in_steps_and_minutes(tiny_model, tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("skyquilt.sampling.checkpoints.time.monotonic", lambda: clock[0])
    member = request(tiny_model)
    steps = Checkpointer(tmp_path / "s.pt", CheckpointPolicy(3, None), None, member, CPU)
    steps.start(0, 10)
    assert [step for step in range(1, 11) if steps.due(step) and steps.start(step) is None] == [
        3, 6, 9,
    ]  # fmt: skip
    minutes = Checkpointer(tmp_path / "m.pt", CheckpointPolicy(), None, member, CPU)
    minutes.start(0, 10)
    assert not minutes.due(1)
    clock[0] = 600.0
    assert minutes.due(2) and not minutes.due(10)  # never after the last step
    off = Checkpointer(tmp_path / "o.pt", CheckpointPolicy(None, None), None, member, CPU)
    off.start(0, 10)
    assert not off.due(5)


def big_state() -> dict:
    return {"x": torch.randn(4, 256), "step": 2, "history": [torch.randn(2, 3)]}


def test_a_flipped_bit_fails_the_checksum(tmp_path):
    path = tmp_path / "a.pt"
    save_checkpoint(path, "stamp", big_state(), 6, CPU)
    assert read_checkpoint(path, "stamp")[1] is None
    flip_a_bit_of_the_largest_tensor(path)
    payload = torch.load(path, weights_only=True)  # still loads: only the checksum sees it
    assert payload["state"]["step"] == 2
    assert read_checkpoint(path, "stamp") == (
        None,
        "damaged (its contents do not match their checksum)",
    )


def test_a_non_finite_state_is_never_written(tmp_path):
    path = tmp_path / "a.pt"
    save_checkpoint(path, "stamp", big_state(), 6, CPU)
    before = path.read_bytes()
    for bad in (float("nan"), float("inf")):
        state = big_state()
        state["history"][0][1, 2] = bad
        with pytest.raises(NonFiniteStateError, match=f"after step 2 of 6 has NaN/Inf.*{path}"):
            save_checkpoint(path, "stamp", state, 6, CPU)
        assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


def test_a_non_finite_state_with_a_valid_checksum_is_discarded(tmp_path):
    path = tmp_path / "a.pt"
    state = big_state()
    state["x"][0, 0] = float("nan")
    payload = {"format": FORMAT, "fingerprint": "stamp", "steps": 6, "state": state,
               "rng": {"cpu": torch.get_rng_state()}}  # fmt: skip
    payload["checksum"] = payload_checksum(payload)
    torch.save(payload, path)
    assert read_checkpoint(path, "stamp") == (None, "its sampler state has NaN/Inf values")


def test_a_checkpoint_of_the_format_without_checksums_is_discarded(tmp_path):
    path = tmp_path / "a.pt"
    torch.save({"format": 1, "fingerprint": "stamp", "steps": 6, "state": big_state(),
                "rng": {"cpu": torch.get_rng_state()}}, path)  # fmt: skip
    assert read_checkpoint(path, "stamp") == (None, f"format 1, not {FORMAT}")


def test_sampling_from_a_non_finite_state_stops_without_a_checkpoint(tiny_model, tmp_path):
    denoiser, model = load_denoiser(tiny_model)
    with torch.no_grad():
        next(denoiser.parameters()).fill_(float("nan"))
    member = request(tiny_model)
    path = tmp_path / "member.pt"
    checkpointer = Checkpointer(path, CheckpointPolicy(1, None), None, member, CPU)
    with pytest.raises(NonFiniteStateError, match="after step 1 of 6"):
        generate_member(denoiser, model, member, progress=False, checkpointer=checkpointer)
    assert not path.exists()

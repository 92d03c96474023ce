"""Checkpoint files: what they hold, when they are written, and which are refused."""

import shutil

import torch

from skyquilt.sampling.checkpoints import (
    Checkpointer,
    CheckpointPolicy,
    fingerprint,
    read_checkpoint,
    save_checkpoint,
)
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

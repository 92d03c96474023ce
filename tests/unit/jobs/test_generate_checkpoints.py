"""Generation jobs killed with SIGKILL resume from their checkpoint, bit for bit."""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from skyquilt_testing.backbones import CONSENT, PAUSE_VARIABLE, PAUSED_MESSAGE, plug_in
from skyquilt_testing.models import write_random_model
from skyquilt_testing.workflow import REPO

from skyquilt.planning.resources import launcher_command
from skyquilt.sampling.checkpoints import FORMAT

SETTINGS = {
    "model_target": "best",
    "sampler": "ddpm",
    "sampler_options": {},
    "steps": 6,
    "precision": "float32",
    "overlap": 4,
    "stitch": "symmetric",
    "seed": 7,
    "max_blankets_per_batch": None,
    **CONSENT,
}
RESUMED = re.compile(r"resumed from step (\d+) of (\d+)")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return plug_in(write_random_model(tmp_path_factory.mktemp("model")))


def command(model, output, checkpoint=None, processes=1, every_steps=1, **overrides) -> str:
    settings = {**SETTINGS, "model_path": str(model), **overrides}
    line = (
        f"{launcher_command(processes)} {REPO / 'scripts/generate.py'} "
        f"--settings '{json.dumps(settings)}' --size 20 --date 2000-04-03T00 --member 1 "
        f"--output {output} --threads 2"
    )
    if checkpoint is not None:
        line += f" --checkpoint {checkpoint} --checkpoint-every-steps {every_steps}"
    return line


def run(line: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        line,
        shell=True,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def kill_at_call(line: str, output: Path, call: int, log: Path, processes: int = 1) -> None:
    """Start the job, wait until its processes stop at denoiser call `call`, SIGKILL them all."""
    with open(log, "w") as stream:
        job = subprocess.Popen(
            line,
            shell=True,
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, PAUSE_VARIABLE: f"{output.name}@{call}"},
        )
    deadline = time.monotonic() + 120
    try:
        while log.read_text().count(PAUSED_MESSAGE) < processes:
            assert job.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()


def latent(path: Path) -> np.ndarray:
    return xr.open_zarr(path)["latent"].values


SAMPLERS = {
    "pc": ({"sampler": "pc"}, 2),  # 2 denoiser calls per step
    "ddpm": ({"sampler": "ddpm"}, 1),
    "ddim_eta0": ({"sampler": "ddim", "sampler_options": {"eta": 0.0}}, 1),
    "ddim_eta05": ({"sampler": "ddim", "sampler_options": {"eta": 0.5}}, 1),
    "rewind": ({"sampler": "rewind", "sampler_options": {"rewind_after": 2, "jump": 1}}, 1),
    "lms": ({"sampler": "lms"}, 1),
}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_a_killed_job_resumes_bit_identical(model, tmp_path, name):
    overrides, calls_per_step = SAMPLERS[name]
    reference = tmp_path / "reference.zarr"
    assert run(command(model, reference, **overrides)).returncode == 0
    steps = 10 if name == "rewind" else 6  # rewind: 6 grid steps, 4 rewinds of 1
    for kill_after in (1, 3):
        output = tmp_path / f"killed{kill_after}.zarr"
        checkpoint = tmp_path / "checkpoints" / f"{kill_after}.pt"
        line = command(model, output, checkpoint, **overrides)
        kill_at_call(line, output, kill_after * calls_per_step + 1, tmp_path / "killed.log")
        assert checkpoint.is_file() and not output.exists()
        resumed = run(line)
        assert resumed.returncode == 0, resumed.stderr
        assert RESUMED.search(resumed.stderr).groups() == (str(kill_after), str(steps))
        assert np.array_equal(latent(output), latent(reference))
        assert not checkpoint.exists()  # removed once the shard is written


def test_two_processes_resume_from_rank_0_checkpoint(model, tmp_path):
    reference = tmp_path / "reference.zarr"
    assert run(command(model, reference, processes=2)).returncode == 0
    output, checkpoint = tmp_path / "killed.zarr", tmp_path / "member.pt"
    line = command(model, output, checkpoint, processes=2)
    kill_at_call(line, output, 3, tmp_path / "killed.log", processes=2)
    assert checkpoint.is_file()
    resumed = run(line)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("resumed from step 2 of 6") == 2  # every rank
    assert np.array_equal(latent(output), latent(reference))
    assert not checkpoint.exists()


def killed_checkpoint(model, tmp_path, **overrides) -> tuple[Path, Path, str]:
    output, checkpoint = tmp_path / "member.zarr", tmp_path / "member.pt"
    line = command(model, output, checkpoint, **overrides)
    kill_at_call(line, output, 3, tmp_path / "killed.log")
    assert checkpoint.is_file()
    return output, checkpoint, line


@pytest.mark.parametrize(
    "change",
    [{"steps": 7}, {"sampler": "ddim"}, {"seed": 8}, {"overlap": 3}, {"precision": "bfloat16"}],
)
def test_a_checkpoint_of_other_settings_is_discarded(model, tmp_path, change):
    output, checkpoint, _ = killed_checkpoint(model, tmp_path)
    other = run(command(model, output, checkpoint, **change))
    assert other.returncode == 0, other.stderr
    assert "discarding checkpoint" in other.stderr and "fingerprint" in other.stderr
    assert "resumed from" not in other.stderr
    assert not checkpoint.exists()


def test_a_checkpoint_of_other_weights_is_discarded(model, tmp_path):
    output, checkpoint, line = killed_checkpoint(model, tmp_path)
    weights = model / "best.safetensors"
    original = weights.read_bytes()
    try:
        weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        other = run(line)
    finally:
        weights.write_bytes(original)
    assert "discarding checkpoint" in other.stderr and "resumed from" not in other.stderr


def test_settings_that_change_no_values_still_resume(model, tmp_path):
    output, checkpoint, _ = killed_checkpoint(model, tmp_path)
    same = run(command(model, output, checkpoint, max_blankets_per_batch=2, every_steps=4))
    assert same.returncode == 0, same.stderr
    assert "resumed from step 2 of 6" in same.stderr


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "fields"])
def test_a_damaged_checkpoint_is_discarded(model, tmp_path, damage):
    reference = tmp_path / "reference.zarr"
    assert run(command(model, reference)).returncode == 0
    output, checkpoint, line = killed_checkpoint(model, tmp_path)
    data = checkpoint.read_bytes()
    if damage == "truncate":
        checkpoint.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        checkpoint.write_bytes(b"not a checkpoint" * 10)
    elif damage == "empty":
        checkpoint.write_bytes(b"")
    else:
        payload = torch.load(checkpoint, weights_only=True)
        assert payload["format"] == FORMAT
        del payload["state"]["x"]
        torch.save(payload, checkpoint)
    other = run(line)
    assert other.returncode == 0, other.stderr
    assert "discarding checkpoint" in other.stderr and "damaged" in other.stderr
    assert "resumed from" not in other.stderr
    assert np.array_equal(latent(output), latent(reference))


def test_no_checkpoint_is_written_without_a_due_interval(model, tmp_path):
    output, checkpoint = tmp_path / "member.zarr", tmp_path / "member.pt"
    line = command(model, output, checkpoint).replace(
        "--checkpoint-every-steps 1", "--checkpoint-every-steps none"
    )
    kill_at_call(line, output, 4, tmp_path / "killed.log")  # default: every 10 minutes
    assert not checkpoint.exists()

"""Generation jobs: reproducibility, several processes, logs and failures."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import xarray as xr
from skyquilt_testing.backbones import (
    CONSENT,
    FAIL_VARIABLE,
    FAILURE_MESSAGE,
    InjectedFailure,
    plug_in,
)
from skyquilt_testing.files import flip_a_bit_of_the_largest_tensor, flip_last_bit_keeping_times
from skyquilt_testing.workflow import REPO

from skyquilt.io.fingerprints import INPUTS, files_record
from skyquilt.jobs.generate import run_generation
from skyquilt.models.config import ModelDirectory, ModelError
from skyquilt.models.weights import load_denoiser
from skyquilt.planning.model import denoiser_fingerprint
from skyquilt.planning.slurm.launcher import launcher_command
from skyquilt.sampling.checkpoints import Checkpointer, CheckpointPolicy
from skyquilt.sampling.generation import NonFiniteSampleError, generate_member
from skyquilt.sampling.request import MemberRequest, RunSettings
from skyquilt.sampling.stopping import SamplingStopped, StopRequest

SETTINGS = {
    "model_target": "best",
    "sampler": "ddpm",
    "sampler_options": {},
    "steps": 3,
    "precision": "float32",
    "overlap": 4,
    "stitch": "symmetric",
    "seed": 7,
    "max_blankets_per_batch": None,
}
DATE = "2000-04-03T00"

pytestmark = pytest.mark.starts_first  # long: real jobs (tests/conftest.py)


def run_job(
    model_path, output, processes=1, size=20, label="2000-04-03T00", member=1, env=None, **overrides
):
    settings = {**SETTINGS, "model_path": str(model_path), **overrides}
    command = (
        f"{launcher_command(processes)} {REPO / 'scripts/generate.py'} "
        f"--settings '{json.dumps(settings)}' --size {size} --date {label} --member {member} "
        f"--output {output} --threads 2"
    )
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        command, shell=True, capture_output=True, text=True, timeout=300, env=environment
    )


@pytest.mark.parametrize("composition", ["blankets", "two_scale"])
def test_two_processes_give_the_single_process_shard(
    tiny_model, tiny_two_scale_model, tmp_path, composition
):
    """The processes split the blankets, and with two-scale composition the coarse windows."""
    model = tiny_two_scale_model if composition == "two_scale" else tiny_model
    single = run_job(model, tmp_path / "single.zarr", composition=composition)
    double = run_job(model, tmp_path / "double.zarr", processes=2, composition=composition)
    assert single.returncode == 0, single.stderr
    assert double.returncode == 0, double.stderr
    one = xr.open_zarr(tmp_path / "single.zarr")
    two = xr.open_zarr(tmp_path / "double.zarr")
    assert two.attrs["processes"] == 2 and one.attrs["processes"] == 1
    assert one.attrs["composition"] == two.attrs["composition"] == composition
    np.testing.assert_allclose(two["latent"].values, one["latent"].values, rtol=1e-5, atol=1e-5)


def test_job_log_reports_the_run(tiny_model, tmp_path):
    result = run_job(tiny_model, tmp_path / "member.zarr")
    assert result.returncode == 0, result.stderr
    log = result.stderr
    for expected in ("T=20", "padded=20", "blankets=4", "sampler=ddpm", "steps=3"):
        assert expected in log
    for expected in ("precision=float32", "device=cpu", "seed=", "s/step", "total"):
        assert expected in log
    assert "3/3" in log  # the tqdm bar over sampler steps


def test_same_seed_reproduces_a_member_bit_for_bit(tiny_model, tmp_path):
    for name in ("first.zarr", "second.zarr"):
        assert run_job(tiny_model, tmp_path / name).returncode == 0
    first, second = (
        xr.open_zarr(tmp_path / name)["latent"].values for name in ("first.zarr", "second.zarr")
    )
    assert np.array_equal(first, second)


def test_non_finite_sample_fails_and_writes_no_shard(tiny_model, tmp_path):
    denoiser, config = load_denoiser(tiny_model)
    with torch.no_grad():
        next(denoiser.parameters()).fill_(float("nan"))
    settings = RunSettings(**{**SETTINGS, "model_path": str(tiny_model), "sampler": "lms"})
    request = settings.member(12, "2000-04-03T00", 0)
    with pytest.raises(NonFiniteSampleError, match="NaN/Inf"):
        generate_member(denoiser, config, request, progress=False)


def test_a_job_failing_at_its_last_denoiser_call_leaves_no_shard(faulty_model, tmp_path):
    """The failure comes once every other step has run: nothing half-made may remain."""
    model = faulty_model
    outputs = tmp_path / "outputs"
    steps = SETTINGS["steps"]  # ddpm: one denoiser call per step
    failing = outputs / "failing.zarr"
    result = run_job(model, failing, env={FAIL_VARIABLE: f"{failing}@{steps}"}, **CONSENT)
    assert result.returncode != 0
    assert f"{FAILURE_MESSAGE} {steps} of {failing}" in result.stderr, result.stderr[-2000:]
    assert not outputs.exists() or list(outputs.iterdir()) == []
    # The same job without the failure writes its shard there.
    control = run_job(model, outputs / "control.zarr", **CONSENT)
    assert control.returncode == 0, control.stderr[-2000:]
    assert [path.name for path in outputs.iterdir()] == ["control.zarr"]


def test_python_launcher_is_this_interpreter():
    assert launcher_command(1) == sys.executable


# Content fingerprints and checkpoints ------------------------------------------------------

CPU = torch.device("cpu")


def planned(model_path, **overrides) -> MemberRequest:
    """A member of T = 12 planned as the workflow plans it: with its denoiser's fingerprint."""
    settings = RunSettings(**{**SETTINGS, "model_path": str(model_path), **overrides})
    fingerprint = denoiser_fingerprint(str(model_path), settings.model_target)
    return dataclasses.replace(settings, model_fingerprint=fingerprint).member(12, DATE, 0)


def latents(path) -> np.ndarray:
    return xr.open_zarr(path)["latent"].values


def test_a_shard_records_the_content_of_its_denoiser(tiny_model, tmp_path):
    request = planned(tiny_model)
    run_generation(request, str(tmp_path / "member.zarr"), 1)
    recorded = xr.open_zarr(tmp_path / "member.zarr").attrs[INPUTS]
    files = ModelDirectory(tiny_model).denoiser_files("best")
    assert recorded == {"denoiser": files_record(files)}
    assert recorded["denoiser"]["fingerprint"] == request.settings.model_fingerprint


def test_weights_changed_since_planning_fail_the_job_naming_both(tiny_model, tmp_path):
    model = shutil.copytree(tiny_model, tmp_path / "model")
    request = planned(model)
    flip_last_bit_keeping_times(model / "best.safetensors")
    now = denoiser_fingerprint(str(model), "best")
    old = request.settings.model_fingerprint
    with pytest.raises(ModelError, match=f"changed since the workflow was planned \\(fingerprint "
                       f"{old[:12]} then, {now[:12]} now\\); run snakemake again"):  # fmt: skip
        run_generation(request, str(tmp_path / "member.zarr"), 1)
    assert not (tmp_path / "member.zarr").exists()


def stopped_checkpoint(request: MemberRequest, path) -> None:
    """The member's checkpoint after its first step, as a stop signal leaves it."""
    denoiser, model = load_denoiser(
        request.settings.model_path, trust=request.settings.trust_model_code
    )
    stop = StopRequest()
    stop.signal = signal.SIGTERM
    checkpointer = Checkpointer(path, CheckpointPolicy(None, None), None, request, CPU, stop=stop)
    with pytest.raises(SamplingStopped):
        generate_member(denoiser, model, request, progress=False, checkpointer=checkpointer)
    assert path.is_file()


def test_a_checkpoint_with_a_flipped_bit_is_discarded_and_the_member_starts_over(
    tiny_model, tmp_path, capsys
):
    request = planned(tiny_model)
    run_generation(request, str(tmp_path / "reference.zarr"), 1)
    checkpoint, intact = tmp_path / "member.pt", tmp_path / "intact.pt"
    stopped_checkpoint(request, checkpoint)
    shutil.copy(checkpoint, intact)
    capsys.readouterr()

    run_generation(request, str(tmp_path / "resumed.zarr"), 1, intact, CheckpointPolicy())
    assert "resumed from step 1 of 3" in capsys.readouterr().err  # as the control shows
    flip_a_bit_of_the_largest_tensor(checkpoint)
    run_generation(request, str(tmp_path / "member.zarr"), 1, checkpoint, CheckpointPolicy())
    log = capsys.readouterr().err
    assert (
        f"discarding checkpoint {checkpoint}: damaged (its contents do not match their checksum)"
        in log
    )
    assert "resumed from" not in log and not checkpoint.exists()
    for name in ("resumed.zarr", "member.zarr"):
        assert np.array_equal(latents(tmp_path / name), latents(tmp_path / "reference.zarr"))


def test_a_member_failing_after_a_resume_names_its_checkpoint(
    tiny_model, tmp_path, capsys, monkeypatch
):
    model = plug_in(shutil.copytree(tiny_model, tmp_path / "model"))
    request = planned(model, **CONSENT)
    checkpoint, output = tmp_path / "member.pt", tmp_path / "member.zarr"
    stopped_checkpoint(request, checkpoint)
    # The plug-in backbone fails at its first call in the job writing `output`.
    monkeypatch.setattr(sys, "argv", ["generate.py", "--output", str(output)])
    monkeypatch.setenv(FAIL_VARIABLE, f"{output}@1")
    with pytest.raises(InjectedFailure) as raised:
        run_generation(request, str(output), 1, checkpoint, CheckpointPolicy())
    note = (
        f"member 12/{DATE}/0 resumed from checkpoint {checkpoint} (step 1 of 3); delete it to "
        "start over"
    )
    assert raised.value.__notes__ == [note]
    assert f"ERROR {note}: {FAIL_VARIABLE}: {FAILURE_MESSAGE} 1" in capsys.readouterr().err
    assert checkpoint.is_file() and not output.exists()

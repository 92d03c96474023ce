"""Generation jobs: reproducibility, several processes, logs and failures."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import xarray as xr
from skyquilt_testing.backbones import CONSENT, FAIL_VARIABLE, FAILURE_MESSAGE, plug_in
from skyquilt_testing.workflow import REPO

from skyquilt.models.weights import load_denoiser
from skyquilt.planning.resources import launcher_command
from skyquilt.sampling.generation import NonFiniteSampleError, generate_member
from skyquilt.sampling.request import RunSettings

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


def test_a_job_failing_at_its_last_denoiser_call_leaves_no_shard(tiny_model, tmp_path):
    """The failure comes once every other step has run: nothing half-made may remain."""
    model = plug_in(shutil.copytree(tiny_model, tmp_path / "model"))
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

"""Generation jobs interrupted mid-sampling (an exception, SIGKILL, or a stop signal: SLURM's
warning before the time limit, SIGTERM, SIGUSR1) resume from their checkpoint, bit for bit.

What every sampler's state must carry, and which checkpoints are discarded rather than resumed,
is decided in the job itself (`run_generation`): those tests run it in-process, interrupted by the
test model's plug-in backbone, which raises at a chosen denoiser call. What needs a process of its
own runs jobs as real processes (scripts/generate.py, under torchrun for two processes): SIGKILL
at any point, signals, two ranks. There the backbone stops the job with SIGSTOP at a chosen
denoiser call, where the test kills or signals it. Every process a job started is killed and
reaped at the end, torchrun's workers included (they run in sessions of their own).
"""

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from skyquilt_testing.backbones import (
    CONSENT,
    FAIL_VARIABLE,
    PAUSE_VARIABLE,
    PAUSED_MESSAGE,
    InjectedFailure,
    plug_in,
)
from skyquilt_testing.models import write_random_model
from skyquilt_testing.workflow import REPO

from skyquilt.jobs.generate import STOPPED_STATUS, run_generation
from skyquilt.planning.slurm.launcher import TIME_LIMIT_SIGNAL, launcher_command
from skyquilt.sampling.checkpoints import FORMAT, CheckpointPolicy
from skyquilt.sampling.request import RunSettings

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

pytestmark = pytest.mark.starts_first  # long: real jobs (tests/conftest.py)


@pytest.fixture(scope="module")
def model(faulty_model) -> Path:
    return faulty_model


@pytest.fixture(scope="module")
def reference(model, tmp_path_factory) -> np.ndarray:
    """The member of SETTINGS sampled without interruption by one process."""
    output = tmp_path_factory.mktemp("reference") / "member.zarr"
    assert run(command(model, output)).returncode == 0
    return latent(output)


@pytest.fixture(scope="module")
def reference_two_processes(model, tmp_path_factory) -> np.ndarray:
    """The same member sampled without interruption by two processes."""
    output = tmp_path_factory.mktemp("reference_two") / "member.zarr"
    assert run(command(model, output, processes=2)).returncode == 0
    return latent(output)


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


def job_processes(leader: int) -> list[int]:
    """`leader` and every process below it. torchrun starts its workers in sessions of their
    own, so killing the leader's process group does not reach them."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [leader]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill_all(job: subprocess.Popen) -> None:
    """SIGKILL the job and every process it started, wherever their session, and reap it;
    fails if any of them survives."""
    if job.poll() is not None:
        return  # it ended by itself; its pid may belong to another process by now
    processes = job_processes(job.pid)
    for pid in processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    job.wait()
    deadline = time.monotonic() + 10
    while survivors := [pid for pid in processes if alive(pid)]:
        assert time.monotonic() < deadline, f"processes {survivors} survived SIGKILL"
        time.sleep(0.05)


def paused(line: str, output: Path, call: int, log: Path, processes: int = 1) -> subprocess.Popen:
    """Start the job and wait until its `processes` processes stop at denoiser call `call`."""
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
    except BaseException:
        kill_all(job)
        raise
    return job


def kill_at_call(line: str, output: Path, call: int, log: Path, processes: int = 1) -> None:
    """Start the job, wait until its processes stop at denoiser call `call`, SIGKILL them all."""
    kill_all(paused(line, output, call, log, processes))


def paused_ranks(log: Path) -> dict[int, int]:
    """rank -> pid of the processes of a paused job (from their lines and environments)."""
    pids = [
        int(pid)
        for pid in re.findall(rf"{PAUSED_MESSAGE} \d+ of \S+ \(pid (\d+)\)", log.read_text())
    ]
    ranks = {}
    for pid in pids:
        environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        rank = next((item[5:] for item in environment if item.startswith(b"RANK=")), b"0")
        ranks[int(rank)] = pid
    return ranks


def signalled_at_call(
    line: str, output: Path, call: int, log: Path, sent: dict[int, str], processes: int = 1
) -> int:
    """Start the job, let its processes stop at denoiser call `call`, send the signals `sent`
    (rank -> name) to those ranks, resume them all and wait: the job's exit status."""
    job = paused(line, output, call, log, processes)
    try:
        ranks = paused_ranks(log)
        for rank, name in sent.items():
            os.kill(ranks[rank], signal.Signals[name])
        for pid in ranks.values():
            os.kill(pid, signal.SIGCONT)
        return job.wait(timeout=120)
    except BaseException:
        kill_all(job)
        raise


def latent(path: Path) -> np.ndarray:
    return xr.open_zarr(path)["latent"].values


# In-process: the job itself, interrupted by an exception -----------------------------------


@pytest.fixture
def in_process(model, monkeypatch):
    """`generate(output, checkpoint=None, fail_at=None, every_steps=1, **overrides)`: the job
    of SETTINGS (+ overrides) run in this process by `run_generation` with one thread, its
    checkpoint written every `every_steps` steps (None: by the default 10 minutes only); the
    plug-in backbone raises InjectedFailure at denoiser call `fail_at`. Returns the exit
    status; the job's log lines go to stderr (capsys). The root logger is restored after."""
    handlers, level = logging.root.handlers[:], logging.root.level

    def generate(output, checkpoint=None, fail_at=None, every_steps=1, **overrides) -> int:
        settings = RunSettings.from_json(
            json.dumps({**SETTINGS, "model_path": str(model), **overrides})
        )
        # The backbone finds its cue by the job's --output argument, as in a real job.
        monkeypatch.setattr(sys, "argv", ["generate.py", "--output", str(output)])
        monkeypatch.setenv(FAIL_VARIABLE, f"{output.name}@{fail_at}" if fail_at else "")
        policy = CheckpointPolicy(every_steps=every_steps, every_minutes=10.0)
        request = settings.member("20", "2000-04-03T00", "1")
        return run_generation(request, str(output), 1, checkpoint, policy)

    yield generate
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)


def interrupted(generate, output: Path, checkpoint: Path, call: int, **overrides) -> None:
    """Run the job until the backbone raises at denoiser call `call`: the checkpoint of the
    last step stays, no shard is written."""
    with pytest.raises(InjectedFailure):
        generate(output, checkpoint, fail_at=call, **overrides)
    assert checkpoint.is_file() and not output.exists()


SAMPLERS = {
    "pc": ({"sampler": "pc"}, 2),  # 2 denoiser calls per step
    "ddpm": ({"sampler": "ddpm"}, 1),
    "ddim_eta0": ({"sampler": "ddim", "sampler_options": {"eta": 0.0}}, 1),
    "ddim_eta05": ({"sampler": "ddim", "sampler_options": {"eta": 0.5}}, 1),
    "rewind": ({"sampler": "rewind", "sampler_options": {"rewind_after": 2, "jump": 1}}, 1),
    "lms": ({"sampler": "lms"}, 1),
}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_an_interrupted_member_resumes_bit_identical(in_process, tmp_path, capsys, name):
    """Every sampler's checkpoint holds all its state: the member resumed after step 1 or 3
    equals the uninterrupted one bit for bit, and the checkpoint is removed with the shard."""
    overrides, calls_per_step = SAMPLERS[name]
    reference = tmp_path / "reference.zarr"
    assert in_process(reference, **overrides) == 0
    steps = 10 if name == "rewind" else 6  # rewind: 6 grid steps, 4 rewinds of 1
    for stopped_after in (1, 3):
        output = tmp_path / f"interrupted{stopped_after}.zarr"
        checkpoint = tmp_path / "checkpoints" / f"{stopped_after}.pt"
        interrupted(in_process, output, checkpoint, stopped_after * calls_per_step + 1, **overrides)
        capsys.readouterr()
        assert in_process(output, checkpoint, **overrides) == 0
        assert RESUMED.search(capsys.readouterr().err).groups() == (str(stopped_after), str(steps))
        assert np.array_equal(latent(output), latent(reference))
        assert not checkpoint.exists()  # removed once the shard is written


@pytest.fixture(scope="module")
def two_scale_model(tmp_path_factory) -> Path:
    """The test model with the plug-in backbone and a coarse model of blocks of 2 states."""
    return plug_in(write_random_model(tmp_path_factory.mktemp("two_scale"), coarse_block=2))


def test_an_interrupted_two_scale_member_resumes_bit_identical(
    in_process, two_scale_model, tmp_path, capsys
):
    """Two-scale composition (its coarse model corrects the steps at sigma >= 0.3): stopped
    after its second step, the member resumes and equals the uninterrupted one bit for bit."""
    overrides = {"model_path": str(two_scale_model), "composition": "two_scale"}
    reference = tmp_path / "reference.zarr"
    assert in_process(reference, **overrides) == 0
    output, checkpoint = tmp_path / "interrupted.zarr", tmp_path / "member.pt"
    interrupted(in_process, output, checkpoint, 3, **overrides)
    capsys.readouterr()
    assert in_process(output, checkpoint, **overrides) == 0
    log = capsys.readouterr().err
    assert RESUMED.search(log).groups() == ("2", "6")
    assert "composition=two_scale" in log
    assert np.array_equal(latent(output), latent(reference))
    assert xr.open_zarr(output).attrs["composition"] == "two_scale"


@pytest.mark.parametrize(
    "change",
    [{"steps": 7}, {"sampler": "ddim"}, {"seed": 8}, {"overlap": 3}, {"precision": "bfloat16"}],
)
def test_a_checkpoint_of_other_settings_is_discarded(in_process, tmp_path, capsys, change):
    output, checkpoint = tmp_path / "member.zarr", tmp_path / "member.pt"
    interrupted(in_process, output, checkpoint, 3)
    capsys.readouterr()
    assert in_process(output, checkpoint, **change) == 0
    log = capsys.readouterr().err
    assert "discarding checkpoint" in log and "fingerprint" in log
    assert "resumed from" not in log
    assert not checkpoint.exists()


def test_a_checkpoint_of_other_weights_is_discarded(in_process, model, tmp_path, capsys):
    output, checkpoint = tmp_path / "member.zarr", tmp_path / "member.pt"
    interrupted(in_process, output, checkpoint, 3)
    weights = model / "best.safetensors"
    original = weights.read_bytes()
    capsys.readouterr()
    try:
        weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        in_process(output, checkpoint)
    finally:
        weights.write_bytes(original)
    log = capsys.readouterr().err
    assert "discarding checkpoint" in log and "resumed from" not in log


def test_settings_that_change_no_values_still_resume(in_process, tmp_path, capsys):
    output, checkpoint = tmp_path / "member.zarr", tmp_path / "member.pt"
    interrupted(in_process, output, checkpoint, 3)
    capsys.readouterr()
    assert in_process(output, checkpoint, every_steps=4, max_blankets_per_batch=2) == 0
    assert "resumed from step 2 of 6" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "fields"])
def test_a_damaged_checkpoint_is_discarded(in_process, tmp_path, capsys, damage):
    reference = tmp_path / "reference.zarr"
    assert in_process(reference) == 0
    output, checkpoint = tmp_path / "member.zarr", tmp_path / "member.pt"
    interrupted(in_process, output, checkpoint, 3)
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
    capsys.readouterr()
    assert in_process(output, checkpoint) == 0
    log = capsys.readouterr().err
    assert "discarding checkpoint" in log and "damaged" in log
    assert "resumed from" not in log
    assert np.array_equal(latent(output), latent(reference))


def test_no_checkpoint_is_written_without_a_due_interval(in_process, tmp_path):
    output, checkpoint = tmp_path / "member.zarr", tmp_path / "member.pt"
    with pytest.raises(InjectedFailure):  # default: every 10 minutes
        in_process(output, checkpoint, fail_at=4, every_steps=None)
    assert not checkpoint.exists()


# Real processes: SIGKILL anywhere, stop signals, two ranks ----------------------------------


def test_a_killed_job_resumes_bit_identical(model, reference, tmp_path):
    """SIGKILL in the middle of a step (the default sampler, ddpm) leaves the checkpoint of the
    step before; the rerun resumes there and writes the uninterrupted job's shard."""
    for kill_after in (1, 3):
        output = tmp_path / f"killed{kill_after}.zarr"
        checkpoint = tmp_path / "checkpoints" / f"{kill_after}.pt"
        line = command(model, output, checkpoint)
        kill_at_call(line, output, kill_after + 1, tmp_path / "killed.log")
        assert checkpoint.is_file() and not output.exists()
        resumed = run(line)
        assert resumed.returncode == 0, resumed.stderr
        assert RESUMED.search(resumed.stderr).groups() == (str(kill_after), "6")
        assert np.array_equal(latent(output), reference)
        assert not checkpoint.exists()  # removed once the shard is written


def test_two_processes_resume_from_rank_0_checkpoint(model, reference_two_processes, tmp_path):
    output, checkpoint = tmp_path / "killed.zarr", tmp_path / "member.pt"
    line = command(model, output, checkpoint, processes=2)
    kill_at_call(line, output, 3, tmp_path / "killed.log", processes=2)
    assert checkpoint.is_file()
    resumed = run(line)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("resumed from step 2 of 6") == 2  # every rank
    assert np.array_equal(latent(output), reference_two_processes)
    assert not checkpoint.exists()


# Stop signals: SLURM's warning before the time limit, SIGTERM, SIGUSR1 -----------------------


def stopped_line(name: str, step: int, checkpoint: Path) -> str:
    return (
        f"{name}: stopped after step {step} of 6, checkpoint {checkpoint}; "
        f"exiting with status {STOPPED_STATUS}"
    )


@pytest.mark.parametrize("name", [f"SIG{TIME_LIMIT_SIGNAL}", "SIGTERM"])
def test_a_stop_signal_checkpoints_ends_the_job_and_the_rerun_resumes_bit_identical(
    model, reference, tmp_path, name
):
    output, checkpoint, log = tmp_path / "member.zarr", tmp_path / "member.pt", tmp_path / "log"
    # No periodic checkpoint: the one found afterwards is the signal's.
    line = command(model, output, checkpoint, every_steps="none")
    # Signalled while in its 3rd denoiser call (step 3): it stops when step 3 is done.
    assert signalled_at_call(line, output, 3, log, {0: name}) == STOPPED_STATUS
    text = log.read_text()
    assert f"received {name}: stopping after the current sampler step" in text
    assert f"checkpoint at step 3 of 6: {checkpoint}" in text
    assert stopped_line(name, 3, checkpoint) in text
    assert checkpoint.is_file() and not output.exists()
    resumed = run(line)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from step 3 of 6" in resumed.stderr
    assert np.array_equal(latent(output), reference)
    assert not checkpoint.exists()


def test_two_processes_stop_together_when_one_is_signalled(
    model, reference_two_processes, tmp_path
):
    output, checkpoint, log = tmp_path / "member.zarr", tmp_path / "member.pt", tmp_path / "log"
    line = command(model, output, checkpoint, processes=2, every_steps="none")
    # Only rank 1 gets the signal; rank 0 learns it after the step and writes the checkpoint.
    status = signalled_at_call(line, output, 3, log, {1: "SIGUSR1"}, processes=2)
    assert status != 0  # torchrun reports its workers' status 75 as a failure of its own
    text = log.read_text()
    assert text.count("received SIGUSR1") == 1
    assert stopped_line("SIGUSR1", 3, checkpoint) in text
    assert checkpoint.is_file() and not output.exists()
    resumed = run(line)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("resumed from step 3 of 6") == 2
    assert np.array_equal(latent(output), reference_two_processes)

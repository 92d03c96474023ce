"""Generation jobs killed with SIGKILL, or stopped by a signal (SLURM's warning before the time
limit, SIGTERM, SIGUSR1), resume from their checkpoint, bit for bit.

Jobs run as real processes (scripts/generate.py, under torchrun for two processes); the test
model's plug-in backbone stops them with SIGSTOP at a chosen denoiser call, where the test kills
or signals them. Every process a job started is killed and reaped at the end, torchrun's workers
included (they run in sessions of their own).
"""

import contextlib
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

from skyquilt.jobs.generate import STOPPED_STATUS
from skyquilt.planning.resources import TIME_LIMIT_SIGNAL, launcher_command
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
def test_a_damaged_checkpoint_is_discarded(model, reference, tmp_path, damage):
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
    assert np.array_equal(latent(output), reference)


def test_no_checkpoint_is_written_without_a_due_interval(model, tmp_path):
    output, checkpoint = tmp_path / "member.zarr", tmp_path / "member.pt"
    line = command(model, output, checkpoint).replace(
        "--checkpoint-every-steps 1", "--checkpoint-every-steps none"
    )
    kill_at_call(line, output, 4, tmp_path / "killed.log")  # default: every 10 minutes
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


def test_a_killed_two_scale_job_resumes_bit_identical(tmp_path):
    """Two-scale composition (its coarse model corrects the steps at sigma >= 0.3): killed after
    its second step, the job resumes and writes the uninterrupted job's shard, bit for bit."""
    model = plug_in(write_random_model(tmp_path / "model", coarse_block=2))
    reference = tmp_path / "reference.zarr"
    assert run(command(model, reference, composition="two_scale")).returncode == 0
    output, checkpoint = tmp_path / "killed.zarr", tmp_path / "member.pt"
    line = command(model, output, checkpoint, composition="two_scale")
    kill_at_call(line, output, 3, tmp_path / "killed.log")
    resumed = run(line)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from step 2 of 6" in resumed.stderr
    assert "composition=two_scale" in resumed.stderr
    assert np.array_equal(latent(output), latent(reference))
    assert xr.open_zarr(output).attrs["composition"] == "two_scale"

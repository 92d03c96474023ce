"""Faults: killed jobs, damaged shards, a full disk, unsafe checkpoints, config changes and
concurrent runs (RELIABILITY.md lists what each test shows).

The workflow tests drive the real `snakemake` on a copy of one finished tiny run (2 start
dates x 2 members, T = 12, 3 steps). skyquilt has no test hooks: faults reach the jobs only
through public doors.

- Mid-sampling, a job stops itself: the run's model names the plug-in backbone
  `skyquilt_testing.backbones:faulty` in its config.yaml, which sends itself SIGSTOP at the
  denoiser call that SKYQUILT_TESTING_PAUSE names for one member's shard.
- Mid-write, the test watches the file system: the hidden temporary store `.<name>.tmp-<id>`
  that every writer fills before renaming it into place (skyquilt.io.atomic) shows that the
  job is writing, and the test stops the job's process (found in /proc by its command line)
  with SIGSTOP while the store is there. The kill tests use larger latents (LARGE_SHAPE) so
  that writing takes long enough to be caught on a loaded machine.

A stopped job is then killed with SIGKILL, as a scheduler would, or resumed with SIGCONT.
"""

import dataclasses
import errno
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
import xarray as xr
import yaml
from skyquilt_testing.backbones import CONSENT, PAUSE_VARIABLE, PAUSED_MESSAGE, plug_in
from skyquilt_testing.models import write_random_model
from skyquilt_testing.workflow import (
    REPO,
    SNAKEMAKE,
    copy_run,
    planned_jobs,
    run_snakemake,
    tiny_config,
    write_config,
)

from skyquilt.io.shards import ShardError, write_shard
from skyquilt.jobs.aggregate import run_aggregate
from skyquilt.jobs.generate import run_generation
from skyquilt.models.config import ModelError
from skyquilt.planning.plan import make_plan

SIZE_DIR = "results/prior/default/12h"
TRAJECTORIES = f"{SIZE_DIR}/trajectories.zarr"
LOGS = "results/logs/default"
DATES = ["2000-04-03T00", "2000-04-20T12"]
SLOTS = [(label, member) for label in DATES for member in (0, 1)]
VICTIM = ("2000-04-20T12", 1)
# How long a job may take to reach the point where the test stops it (a loaded machine).
PAUSE_TIMEOUT_S = 300
# Latents of the kill tests: a 6 MiB shard takes a few hundred ms to write, a window that
# polling every millisecond cannot miss (the tiny model's 3 KiB shard: some 50 ms).
LARGE_SHAPE = (16, 64, 128)


def shard_path(label: str, member: int) -> str:
    """A shard's path relative to the run: the generation job's --output argument."""
    return f"{SIZE_DIR}/shards/{label}/{member}.zarr"


def shard(run: Path, label: str, member: int) -> Path:
    return run / shard_path(label, member)


def latents(path: Path) -> np.ndarray:
    return xr.open_zarr(path)["latent"].values


def stamps(run: Path, slots=SLOTS) -> dict[tuple[str, int], int]:
    """Modification times of the shards' attribute files: they change when a shard is rewritten."""
    return {slot: (shard(run, *slot) / ".zattrs").stat().st_mtime_ns for slot in slots}


def leftovers(run: Path) -> list[Path]:
    """Temporary or moved-aside stores that a killed writer left behind."""
    return sorted(run.glob(f"{SIZE_DIR}/**/.*.zarr.*"))


def edit_config(run: Path, **changes) -> None:
    config = yaml.safe_load((run / "config.yaml").read_text())
    config.update(changes)
    write_config(run, config)


def finished(directory: Path, model_path: Path) -> Path:
    """One uninterrupted tiny run in `directory` of a model with the faulty backbone."""
    write_config(directory, tiny_config(model_path, **CONSENT))
    run_snakemake(directory, "--cores", "2")
    return directory


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, faulty_model) -> Path:
    """One uninterrupted run; most tests start from a copy of it."""
    return finished(tmp_path_factory.mktemp("finished"), faulty_model)


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    return copy_run(finished_run, tmp_path)


@pytest.fixture(scope="module")
def finished_large_run(tmp_path_factory) -> Path:
    """The same run with latents of LARGE_SHAPE, for the tests that stop a job mid-write."""
    model = write_random_model(tmp_path_factory.mktemp("large_model"), latent_shape=LARGE_SHAPE)
    return finished(tmp_path_factory.mktemp("finished_large"), plug_in(model))


@pytest.fixture
def large_run(finished_large_run, tmp_path) -> Path:
    return copy_run(finished_large_run, tmp_path)


@pytest.fixture(scope="module")
def generated(tmp_path_factory, tiny_model) -> Path:
    """The shards of the tiny run made in this process (no snakemake), with their config."""
    root = tmp_path_factory.mktemp("generated")
    config = tiny_config(tiny_model)
    write_config(root, config)
    plan = make_plan(config)
    for slot in SLOTS:
        run_generation(plan.request(12, *slot), str(shard(root, *slot)), torch.get_num_threads())
    return root


def process_state(pid: int) -> str | None:
    """The state letter of a process ('T' when stopped, 'Z' when ended), None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def command_line(pid: str) -> list[str]:
    """The arguments of a process, [] if it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def job_processes(workdir: Path, is_job: Callable[[list[str]], bool]) -> list[int]:
    """The processes that run in `workdir` and whose arguments `is_job` accepts."""
    found, cwd = [], str(workdir.resolve())
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry.name}/cwd") != cwd:
                continue
        except OSError:
            continue
        if is_job(command_line(entry.name)):
            found.append(int(entry.name))
    return found


def python_script(argv: list[str], suffix: str) -> bool:
    """A Python interpreter (not a shell whose command line mentions it) running a script
    whose name ends with `suffix`, after any interpreter flags such as -u."""
    if len(argv) < 2 or not Path(argv[0]).name.startswith("python"):
        return False
    return next((arg for arg in argv[1:] if not arg.startswith("-")), "").endswith(suffix)


def generation_job(label: str, member: int) -> Callable[[list[str]], bool]:
    """Recognises the generation job of one member: scripts/generate.py --output <its shard>."""

    def is_job(argv: list[str]) -> bool:
        if not python_script(argv, "/generate.py") or "--output" not in argv[:-1]:
            return False
        return argv[argv.index("--output") + 1].endswith(shard_path(label, member))

    return is_job


def aggregate_job(argv: list[str]) -> bool:
    """Recognises the aggregate job: Snakemake runs scripts/aggregate.py as a copy
    .snakemake/scripts/tmp<id>.aggregate.py."""
    return python_script(argv, ".aggregate.py")


def temporary_store(final: Path, chunks: int = 0) -> Path | None:
    """The hidden store `.<name>.tmp-<id>` being written next to `final`, once it holds at
    least `chunks` chunks of latents; None before."""
    prefix = f".{final.name}.tmp-"
    try:
        names = os.listdir(final.parent)
    except FileNotFoundError:
        return None
    for name in names:
        if not name.startswith(prefix):
            continue
        store = final.parent / name
        try:
            written = [key for key in os.listdir(store / "latent") if not key.startswith(".")]
        except FileNotFoundError:
            written = []
        if len(written) >= chunks:
            return store
    return None


class Background:
    """A snakemake run in the background whose jobs can be paused, killed or resumed."""

    def __init__(self, workdir: Path, arguments: tuple[str, ...], env: dict[str, str]):
        self.workdir = workdir
        self.output = workdir / "snakemake.out"
        command = [
            str(SNAKEMAKE),
            "--snakefile", str(REPO / "Snakefile"),
            "--configfile", str(workdir / "config.yaml"),
            "--directory", str(workdir),
            *arguments,
        ]  # fmt: skip
        with self.output.open("w") as output:
            self.process = subprocess.Popen(
                command, cwd=workdir, stdout=output, stderr=subprocess.STDOUT,
                env={**os.environ, **env},
            )  # fmt: skip
        self.paused: list[int] = []
        self.deadline = time.monotonic() + PAUSE_TIMEOUT_S

    def check_running(self, waiting_for: str) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"snakemake ended before {waiting_for}:\n{self.output.read_text()}")
        if time.monotonic() > self.deadline:
            pytest.fail(f"not seen within {PAUSE_TIMEOUT_S} s: {waiting_for}")

    def paused_job(self, log: Path) -> int:
        """Wait until the job writing `log` stops itself (the faulty backbone's cue); its pid."""
        while True:
            text = log.read_text() if log.exists() else ""
            match = re.search(rf"{PAUSED_MESSAGE} \d+ of \S+ \(pid (\d+)\)", text)
            if match and process_state(int(match[1])) == "T":
                self.paused.append(int(match[1]))
                return int(match[1])
            self.check_running(f"the job of {log} paused")
            time.sleep(0.05)

    def stopped_while_writing(
        self, final: Path, is_job: Callable[[list[str]], bool], chunks: int = 0
    ) -> int:
        """Stop the job (a process of this run that `is_job` recognises) with SIGSTOP as soon
        as its temporary store for `final` holds `chunks` chunks of latents; its pid.

        Fails if the job ends first, or renamed the store into place before it stopped.
        """
        while not (pids := job_processes(self.workdir, is_job)):
            self.check_running(f"a job writing {final}")
            time.sleep(0.01)
        [pid] = pids
        self.paused.append(pid)
        while (store := temporary_store(final, chunks)) is None:
            if process_state(pid) in (None, "Z"):
                pytest.fail(f"the job {pid} ended without a temporary store for {final} seen")
            self.check_running(f"the temporary store of {final}")
            time.sleep(0.001)  # some 1000 looks during the few hundred ms that writing takes
        os.kill(pid, signal.SIGSTOP)
        while process_state(pid) != "T":
            self.check_running(f"job {pid} stopped")
            time.sleep(0.001)
        if not store.exists():
            pytest.fail(f"missed the write of {final}: renamed before the job stopped")
        return pid

    def wait(self) -> int:
        return self.process.wait(timeout=300)

    def stop(self) -> None:
        """Kill whatever is left (a failed test must not leave stopped processes behind)."""
        for pid in self.paused:
            if process_state(pid) is not None:
                os.kill(pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextmanager
def background(
    workdir: Path, *arguments: str, pause: dict[tuple[str, int], int] | None = None
) -> Iterator[Background]:
    """snakemake in the background; `pause`: (date label, member) -> the denoiser call at
    which that member's job stops itself."""
    cues = ",".join(f"{shard_path(*slot)}@{call}" for slot, call in (pause or {}).items())
    snakemake = Background(workdir, arguments, {PAUSE_VARIABLE: cues})
    try:
        yield snakemake
    finally:
        snakemake.stop()


def generate_log(run: Path, label: str, member: int) -> Path:
    return run / LOGS / "generate/12h" / label / f"{member}.log"


# Killed jobs -----------------------------------------------------------------------------


def test_killed_generation_jobs_leave_no_shard_and_the_rerun_regenerates_exactly_them(
    large_run,
):
    run = large_run
    mid_sampling, mid_write = SLOTS[1], VICTIM
    killed = [mid_sampling, mid_write]
    uninterrupted = {slot: latents(shard(run, *slot)) for slot in killed}
    untouched = [slot for slot in SLOTS if slot not in killed]
    before = stamps(run, untouched)
    for slot in killed:
        shutil.rmtree(shard(run, *slot))

    with background(run, "--cores", "2", pause={mid_sampling: 2}) as snakemake:
        pids = [
            snakemake.stopped_while_writing(shard(run, *mid_write), generation_job(*mid_write)),
            snakemake.paused_job(generate_log(run, *mid_sampling)),
        ]
        # The job stopped mid-write has its store under a temporary name only.
        assert [(path.parent.name, path.name.split(".tmp-")[0]) for path in leftovers(run)] == [
            (mid_write[0], f".{mid_write[1]}.zarr")
        ]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        assert snakemake.wait() != 0

    for slot in killed:
        assert not shard(run, *slot).exists(), f"killed job {slot} left a shard at its final path"
    run_snakemake(run, "--cores", "2")
    for slot in killed:
        assert np.array_equal(latents(shard(run, *slot)), uninterrupted[slot]), f"{slot} differs"
    assert stamps(run, untouched) == before, "members that were not killed were rewritten"
    assert leftovers(run) == []


def test_killed_aggregate_keeps_the_previous_trajectories_and_the_rerun_completes(large_run):
    run = large_run
    previous = latents(run / TRAJECTORIES)
    shutil.rmtree(shard(run, *VICTIM))  # the aggregate must run again

    with background(run, "--cores", "2") as snakemake:
        # Stopped mid-write: 2 of its 4 members are in the temporary store.
        pid = snakemake.stopped_while_writing(run / TRAJECTORIES, aggregate_job, chunks=2)
        assert np.array_equal(latents(run / TRAJECTORIES), previous), "replaced before it was done"
        os.kill(pid, signal.SIGKILL)
        assert snakemake.wait() != 0

    assert np.array_equal(latents(run / TRAJECTORIES), previous)
    assert planned_jobs(run_snakemake(run, "-n").stdout) == {"aggregate": 1, "all": 1}
    run_snakemake(run, "--cores", "2")
    assert np.array_equal(latents(run / TRAJECTORIES), previous)
    assert leftovers(run) == []


# Damaged shards ---------------------------------------------------------------------------


def chunk(path: Path) -> Path:
    return path / "latent" / "0.0.0.0"


def remove_chunk(path: Path) -> None:
    chunk(path).unlink()


def truncate_chunk(path: Path) -> None:
    data = chunk(path).read_bytes()
    chunk(path).write_bytes(data[: len(data) // 2])


def rewrite(path: Path, latent: np.ndarray | None = None, **attrs) -> None:
    """Replace a shard by a self-consistent one (valid checksum) that differs from the run's."""
    original = xr.open_zarr(path).load()
    latent = original["latent"].values if latent is None else latent
    write_shard(path, latent, original["time"].values[: len(latent)], {**original.attrs, **attrs})


DAMAGES = {
    "missing_chunk": (remove_chunk, "checksum"),
    "truncated_chunk": (truncate_chunk, "(unreadable|damaged) chunk"),
    "wrong_latent_shape": (
        lambda path: rewrite(path, np.zeros((12, 2, 4, 4), np.float32)),
        r"latent shape \(2, 4, 4\), expected \(2, 4, 8\)",
    ),
    "wrong_length": (
        lambda path: rewrite(path, np.zeros((10, 2, 4, 8), np.float32)),
        "holds 10 states, expected 12",
    ),
    "another_sampler": (
        lambda path: rewrite(path, sampler="ddim"),
        "attribute 'sampler' is 'ddim' but the config asks for 'lms'",
    ),
}


@pytest.mark.parametrize("slot", [SLOTS[0], SLOTS[-1]], ids=["first_member", "last_member"])
@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_shard_fails_the_aggregate_naming_the_file_and_problem(
    generated, tmp_path, damage, slot
):
    run = tmp_path / "run"
    shutil.copytree(generated, run)
    damage_shard, problem = DAMAGES[damage]
    damage_shard(shard(run, *slot))
    config = yaml.safe_load((run / "config.yaml").read_text())
    plan = make_plan(config)
    output = run / "new_trajectories.zarr"
    with pytest.raises(ShardError, match=rf"{re.escape(str(shard(run, *slot)))}.*{problem}"):
        run_aggregate(
            [str(shard(run, *key)) for key in SLOTS],
            str(output),
            plan.settings,
            12,
            plan.date_labels,
            plan.members,
            latent_shape=plan.model.latent_shape,
        )
    assert not output.exists()


def test_forcerun_or_deleting_repairs_damaged_shards(run):
    finished = latents(run / TRAJECTORIES)
    truncated, other_sampler = SLOTS[1], VICTIM
    truncate_chunk(shard(run, *truncated))
    rewrite(shard(run, *other_sampler), sampler="ddim")
    shutil.rmtree(run / TRAJECTORIES)  # e.g. deleted to rebuild it

    failed = run_snakemake(run, "--cores", "2", check=False)
    assert failed.returncode != 0
    log = (run / LOGS / "aggregate/12h.log").read_text()
    named = shard(run, *truncated).relative_to(run)
    assert re.search(f"ERROR shard {re.escape(str(named))} has an (unreadable|damaged) chunk", log)
    assert not (run / TRAJECTORIES).exists()

    shutil.rmtree(shard(run, *other_sampler))
    run_snakemake(run, "--cores", "2", "--forcerun", str(named))
    assert np.array_equal(latents(run / TRAJECTORIES), finished)


# Full disk --------------------------------------------------------------------------------


def fill(directory: Path) -> Path:
    """Fill the file system of `directory` with one file; return it."""
    filler = directory / "filler"
    block = b"\0" * 65536
    with filler.open("wb", buffering=0) as handle:  # unbuffered: nothing is left to flush
        try:
            while True:
                handle.write(block)
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


@pytest.fixture
def small_disk(run) -> Iterator[Path]:
    """The run's prior directory moved onto a 1 MiB tmpfs (the logs stay on the real disk)."""
    prior = run / "results/prior"
    real = prior.rename(run / "results/prior.real")
    prior.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(prior)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        shutil.copytree(real, prior, dirs_exist_ok=True)  # keeps modification times
        shutil.rmtree(real)
        yield prior
    finally:
        subprocess.run(["umount", "--lazy", str(prior)], check=True)


def test_full_disk_fails_generation_with_a_clear_message_and_nothing_partial(run, small_disk):
    victim = shard(run, *VICTIM)
    uninterrupted = latents(victim)
    shutil.rmtree(victim)
    filler = fill(small_disk)

    failed = run_snakemake(run, "--cores", "2", check=False)
    assert failed.returncode != 0
    log = generate_log(run, *VICTIM).read_text()
    assert f"no space left on the device of {victim.relative_to(run)}" in log
    assert not victim.exists()
    assert leftovers(run) == []

    filler.unlink()
    run_snakemake(run, "--cores", "2")
    assert np.array_equal(latents(victim), uninterrupted)


def test_full_disk_fails_the_aggregate_and_keeps_the_previous_one(run, small_disk):
    previous = latents(run / TRAJECTORIES)
    filler = fill(small_disk)

    failed = run_snakemake(run, "--cores", "2", "--forcerun", "aggregate", check=False)
    assert failed.returncode != 0
    log = (run / LOGS / "aggregate/12h.log").read_text()
    assert f"no space left on the device of {TRAJECTORIES}" in log
    assert np.array_equal(latents(run / TRAJECTORIES), previous)
    assert leftovers(run) == []

    filler.unlink()
    completed = run_snakemake(run, "--cores", "2", "--forcerun", "aggregate")
    assert planned_jobs(completed.stdout + completed.stderr) == {"aggregate": 1, "all": 1}
    assert np.array_equal(latents(run / TRAJECTORIES), previous)


def test_enospc_while_writing_a_shard_is_reported_and_leaves_nothing(tiny_model, tmp_path):
    """The same without a tmpfs: ENOSPC injected into zarr's file writes."""
    config = tiny_config(tiny_model)
    request = make_plan(config).request(12, *VICTIM)
    output = tmp_path / "shards/1.zarr"
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with (
        mock.patch("zarr.storage._local._put", side_effect=full),
        pytest.raises(OSError, match=f"no space left on the device of {output}"),
    ):
        run_generation(request, str(output), torch.get_num_threads())
    assert list((tmp_path / "shards").iterdir()) == []


# Unsafe checkpoints -----------------------------------------------------------------------


class CodeRunningPayload:
    """Unpickling this object would create `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_generation_refuses_a_checkpoint_that_runs_code(tiny_model, tmp_path):
    model_root = tiny_model.parents[7]
    shutil.copytree(model_root, tmp_path / "model")
    model_path = tmp_path / "model" / tiny_model.relative_to(model_root)
    # Planned while the weights are intact: the job must refuse them on its own (the dry run
    # refuses them too, without running them: tests/unit/models/test_weight_files.py).
    settings = make_plan(tiny_config(model_path)).settings
    (model_path / "best.safetensors").unlink()
    marker = tmp_path / "payload-ran"
    torch.save({"weight": CodeRunningPayload(marker)}, model_path / "best.pt")
    output = tmp_path / "shards/1.zarr"
    # With the denoiser's fingerprint planned, the job refuses the new file before loading it;
    # without one (a model the workflow builds itself), the loader refuses it unpickled.
    with pytest.raises(ModelError, match="changed since the workflow was planned"):
        run_generation(settings.member(12, *VICTIM), str(output), torch.get_num_threads())
    unplanned = dataclasses.replace(settings, model_fingerprint=None).member(12, *VICTIM)
    with pytest.raises(ModelError, match=r"best\.pt cannot be loaded safely"):
        run_generation(unplanned, str(output), torch.get_num_threads())
    assert not marker.exists(), "the checkpoint ran code"
    assert not output.exists()


# Config changes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"diffusion": {"num_steps": 3, "sampler": {"type": "ddim", "config": {}}}},
        {"diffusion": {"num_steps": 4, "sampler": {"type": "lms", "config": {}}}},
    ],
    ids=["sampler", "num_steps"],
)
def test_changing_the_sampler_or_steps_reruns_every_member(run, change):
    edit_config(run, **change)
    assert planned_jobs(run_snakemake(run, "-n").stdout) == {
        "aggregate": 1,
        "all": 1,
        "generate": 4,
    }


def generate_after_edit(run, **edits) -> tuple[np.ndarray, np.ndarray]:
    """Apply `edits` to the config and rerun: exactly 2 new members and the aggregate run,
    and no existing shard is rewritten. Returns the aggregate's latents before and after."""
    previous, before = latents(run / TRAJECTORIES), stamps(run)
    edit_config(run, **edits)
    completed = run_snakemake(run, "--cores", "2")
    assert planned_jobs(completed.stdout + completed.stderr) == {
        "aggregate": 1,
        "all": 1,
        "generate": 2,
    }
    assert stamps(run) == before
    return previous, latents(run / TRAJECTORIES)


def test_raising_the_samples_per_date_generates_only_the_new_members(run):
    previous, merged = generate_after_edit(run, num_samples_per_date=3)
    assert merged.shape[:2] == (2, 3)
    assert np.array_equal(merged[:, :2], previous)


def test_adding_a_start_date_generates_only_its_members(run):
    dates = ["2000-04-03 0h", "2000-04-20 12h", "2000-05-01 6h"]
    previous, merged = generate_after_edit(run, start_dates=dates)
    assert merged.shape[:2] == (3, 2)
    assert np.array_equal(merged[:2], previous)


# Concurrent runs --------------------------------------------------------------------------


def test_a_second_snakemake_on_the_same_directory_is_refused(run):
    finished = latents(run / TRAJECTORIES)
    shutil.rmtree(shard(run, *VICTIM))

    with background(run, "--cores", "2", pause={VICTIM: 1}) as first:
        pid = first.paused_job(generate_log(run, *VICTIM))
        second = run_snakemake(run, "--cores", "2", check=False)
        assert second.returncode != 0
        assert "cannot be locked" in second.stdout + second.stderr
        os.kill(pid, signal.SIGCONT)
        assert first.wait() == 0, first.output.read_text()

    assert np.array_equal(latents(run / TRAJECTORIES), finished)

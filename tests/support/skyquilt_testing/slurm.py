"""A live one-node SLURM cluster for the test suite: the fixtures `live_slurm` and
`live_slurm_accounting`.

tests/conftest.py registers them with ``from skyquilt_testing.slurm import ...``.

The cluster is started with ``tests/slurm/cluster.sh start`` (installing Debian's slurmctld,
slurmd, slurm-client and munge with apt-get when they are missing, so it needs root) by the first
test that needs it, and stopped with ``cluster.sh stop`` (which kills the daemons by PID and
removes /etc/slurm/slurm.conf again) when the last pytest worker that used it ends its session.
Under pytest-xdist (`make test`), several workers share that one cluster (`SharedCluster`): the
SLURM tests of different workers run on it at the same time, each holding it shared while it
runs; the accounting tests hold it alone, because they restart it with accounting storage.

It only runs when the environment variable ``CI`` is set or ``SKYQUILT_SLURM_TESTS=1``;
otherwise the tests that use it are skipped with a message saying how to run them. In CI it never
skips: if the cluster cannot be started, the tests fail with the script's output.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from skyquilt_testing.workflow import tiny_config, write_config

REPO = Path(__file__).resolve().parents[3]
CLUSTER_SCRIPT = REPO / "tests" / "slurm" / "cluster.sh"
PROFILE = REPO / "profiles" / "slurm"
# The account of the test configs: any name works without accounting storage; with it
# (`live_slurm_accounting`) the cluster gives the user exactly this one (and root).
ACCOUNT = "skyquilt-test"
ACCOUNTING_ENV = {"SKYQUILT_SLURM_ACCOUNTING": "1", "SKYQUILT_SLURM_ACCOUNTS": ACCOUNT}

HOW_TO_RUN = (
    "live SLURM tests are off; run them with SKYQUILT_SLURM_TESTS=1 (as root: the fixture "
    "installs slurmctld slurmd slurm-client munge with apt-get if missing, starts a one-node "
    "cluster on 127.0.0.1 and stops it again), or set CI"
)

# Test-only overrides of profiles/slurm: poll every 2 s instead of 30-40 s (a 3-member run takes
# ~45 s instead of ~2 min), and ask squeue for job states because the local cluster has no
# slurmdbd (sacct fails there). The local filesystem needs little latency wait, but array tasks
# also wait for the first member's output (plugin issue #447), hence 30 s rather than 5.
FAST_OVERRIDES = (
    "--slurm-status-command",
    "squeue",
    "--seconds-between-status-checks",
    "2",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--latency-wait",
    "30",
)

# The queue summary of a run: the run's jobs that SLURM lists, by state.
QUEUE_SUMMARY = re.compile(r"^skyquilt: waiting on SLURM jobs of run (\S+): (\d+ [A-Z]+.*)$", re.M)

_SINGLE_RE = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.*?)\)\.")
_ARRAY_RE = re.compile(
    r"Submitted array job with Snakemake IDs ([\d,]+) and SLURM job ID (\d+)\. "
    r"The individual task IDs are (\d+)-(\d+)\."
)
_RUN_ID_RE = re.compile(r"SLURM run ID: (\S+)")
_SBATCH_RE = re.compile(r"^(?:sbatch call|Submitting array job with sbatch call): (sbatch .*)$")


def slurm_hardware(partition: str, gpu_model: str) -> dict:
    """The example's `hardware` keys, sized for the one-node test cluster."""
    job = {"cpus": 1, "ram": "1GB", "time": "10:00", "partition": partition}
    return {
        "backend": "slurm",
        "account": ACCOUNT,
        "gpus_per_node": 1,
        "gen": {**job, "gpus": 1, "gpu_model": gpu_model},
        "aggregate": job,
    }


def shipped_config(workdir: Path, model: Path, partition: str, gpu_type: str, **hardware) -> None:
    """config.yaml in `workdir` for profiles/slurm as shipped: two members of `model` for one
    start date (T = 12), a queue summary every 10 s, `hardware` keys on top."""
    hardware = slurm_hardware(partition, gpu_type) | {"queue_summary_every": 10} | hardware
    config = tiny_config(
        model, start_dates=["2000-04-20 12h"], num_samples_per_date=2, hardware=hardware
    )
    write_config(workdir, config)


def workflow_args(workdir: Path) -> tuple[str, ...]:
    """--snakefile and --configfile of a run of the repository's workflow in `workdir`."""
    return ("--snakefile", str(REPO / "Snakefile"), "--configfile", str(workdir / "config.yaml"))


def enabled() -> bool:
    """True when the live SLURM tests must run: in CI, or when the user opted in."""
    return bool(os.environ.get("CI")) or os.environ.get("SKYQUILT_SLURM_TESTS") == "1"


def _clean_env(extra: dict | None = None) -> dict:
    # A SLURM_* variable from an enclosing allocation would point sbatch elsewhere.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def _slurm_output(*command: str) -> str:
    """stdout of a SLURM client command run against the test cluster; raises if it fails."""
    return subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=30, env=_clean_env()
    ).stdout


@dataclass
class SnakemakeRun:
    """The result of one `snakemake --profile profiles/slurm` run on the live cluster."""

    command: list[str]
    returncode: int
    output: str  # stdout and stderr, interleaved
    seconds: float

    @property
    def run_id(self) -> str | None:
        """The plugin's run UUID; every SLURM job of the run carries it as its job name."""
        match = _RUN_ID_RE.search(self.output)
        return match.group(1) if match else None

    @property
    def submitted_jobs(self) -> dict[int, str]:
        """Snakemake job id -> SLURM job id ("123" for a single job, "123_2" for an array task)."""
        jobs: dict[int, str] = {}
        for match in _SINGLE_RE.finditer(self.output):
            jobs[int(match.group(1))] = match.group(2)
        for match in _ARRAY_RE.finditer(self.output):
            ids = [int(i) for i in match.group(1).split(",")]
            first = int(match.group(3))
            for offset, jobid in enumerate(ids):
                jobs[jobid] = f"{match.group(2)}_{first + offset}"
        return jobs

    @property
    def array_submissions(self) -> list[dict]:
        """One entry per `sbatch --array` call: SLURM array job id, task range, Snakemake ids."""
        return [
            {
                "slurm_jobid": m.group(2),
                "tasks": (int(m.group(3)), int(m.group(4))),
                "snakemake_jobids": [int(i) for i in m.group(1).split(",")],
            }
            for m in _ARRAY_RE.finditer(self.output)
        ]

    @property
    def sbatch_calls(self) -> list[str]:
        """The sbatch command lines (logged by the plugin with --verbose only), --wrap cut off."""
        calls = []
        for line in self.output.splitlines():
            match = _SBATCH_RE.match(line.strip())
            if match:
                calls.append(match.group(1).split(" --wrap=")[0])
        return calls

    def check(self) -> SnakemakeRun:
        if self.returncode != 0:
            raise AssertionError(
                f"snakemake failed ({self.returncode}) after {self.seconds:.0f} s:\n"
                f"{' '.join(self.command)}\n{self.output[-6000:]}"
            )
        return self


def _collect(stream: Iterable[str], lines: list[str]) -> None:
    """Append every line of `stream` to `lines` as it comes."""
    for line in stream:
        lines.append(line)


@dataclass
class LiveSlurm:
    """A running one-node cluster: node `node`, partitions `partitions` (the first, `partition`, is
    the default), `gpus` fake GPUs of GRES type `gpu_type` (`--gpus=N` and `--gpus=fake:N` both
    work). Without `accounting` storage any account name is accepted; with it (slurmdbd and
    MariaDB, AccountingStorageEnforce=associations) only ACCOUNT and root."""

    partition: str
    partitions: list[str]
    node: str
    cpus: int
    real_memory_mb: int
    gpus: int
    gpu_type: str
    state_dir: Path
    accounting: bool = False
    profile: Path = PROFILE
    overrides: tuple[str, ...] = FAST_OVERRIDES
    runs: list[SnakemakeRun] = field(default_factory=list)

    def profile_args(self, *, default_resources: dict | None = None) -> list[str]:
        """`--profile <repo>/profiles/slurm` plus the test overrides.

        `--default-resources` replaces the profile's default-resources as a whole; by default it
        sends rules without their own resources to this cluster's partition with 1 GB / 10 min.
        Rules that set slurm_partition themselves keep it: give those the partition in the test
        config (or start the cluster with SKYQUILT_SLURM_PARTITIONS=debug,<theirs>).
        """
        resources = {"slurm_partition": self.partition, "mem_mb": 1000, "runtime": 10}
        resources.update(default_resources or {})
        return [
            "--profile",
            str(self.profile),
            *self.overrides,
            # nargs="*": must stay last, or it swallows targets that follow.
            "--default-resources",
            *(f"{key}={value}" for key, value in resources.items()),
        ]

    def _command(self, args, verbose, default_resources, as_shipped) -> list[str]:
        profile = (
            ["--profile", str(self.profile)]
            if as_shipped
            else self.profile_args(default_resources=default_resources)
        )
        return [
            sys.executable,
            "-m",
            "snakemake",
            *args,
            *(["--verbose"] if verbose else []),
            *profile,
        ]

    def snakemake(
        self,
        workdir: Path,
        *args: str,
        timeout: float = 600,
        verbose: bool = True,
        default_resources: dict | None = None,
        env: dict | None = None,
        as_shipped: bool = False,
        stop_when: Callable[[str], bool] | None = None,
    ) -> SnakemakeRun:
        """Run `snakemake <args> --profile profiles/slurm <overrides>` in `workdir` (cwd), or
        with `as_shipped` the profile alone: no status, polling or resource overrides.

        `args` are targets and flags (e.g. "--snakefile", path, "--configfile", path). Never
        raises on failure: call `.check()` on the result. The run is killed (SIGKILL: snakemake
        ignores SIGTERM while it waits for jobs), and reported with returncode -9, as soon as its
        output so far satisfies `stop_when` (a run that would wait forever), or when it hangs
        past `timeout` seconds.
        """
        command = self._command(args, verbose, default_resources, as_shipped)
        start = time.monotonic()
        lines: list[str] = []
        timed_out = False
        with subprocess.Popen(
            command,
            cwd=workdir,
            env=_clean_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc:
            reader = threading.Thread(target=_collect, args=(proc.stdout, lines), daemon=True)
            reader.start()
            while proc.poll() is None:
                if stop_when is not None and stop_when("".join(lines)):
                    proc.kill()
                    proc.wait()
                elif time.monotonic() - start > timeout:
                    proc.kill()
                    proc.wait()
                    timed_out = True
                else:
                    time.sleep(0.2)
            reader.join()
        if timed_out:
            lines.append(f"\n[live_slurm] killed after {timeout:.0f} s")
        run = SnakemakeRun(command, proc.returncode, "".join(lines), time.monotonic() - start)
        self.runs.append(run)
        return run

    def squeue(self, run_id: str | None = None) -> list[dict]:
        """All jobs the controller still knows (`squeue -t all`: finished ones stay for MinJobAge),
        optionally only those of one snakemake run (job name = the plugin's run id)."""
        fields = (
            "jobid",
            "raw_jobid",
            "array_jobid",
            "array_taskid",
            "name",
            "state",
            "partition",
            "account",
            "comment",
            "tres_per_job",
        )
        out = _slurm_output("squeue", "-t", "all", "-h", "-o", "%i|%A|%F|%K|%j|%T|%P|%a|%k|%b")
        jobs = [dict(zip(fields, line.split("|"), strict=False)) for line in out.splitlines()]
        return [j for j in jobs if run_id is None or j["name"] == run_id]

    def sacct(self, run_id: str) -> list[dict]:
        """The run's jobs as the accounting database holds them (`live_slurm_accounting` only)."""
        fields = ("jobid", "state", "account")
        out = _slurm_output(
            "sacct", "-X", "--parsable2", "--noheader", "--format=JobIdRaw,State,Account",
            "--name", run_id,
        )  # fmt: skip
        return [dict(zip(fields, line.split("|"), strict=False)) for line in out.splitlines()]

    def scontrol_job(self, jobid: str) -> dict[str, str]:
        """`scontrol show job -o <id>` as a dict (e.g. TresPerJob, NumCPUs, ArrayJobId)."""
        out = _slurm_output("scontrol", "show", "job", "-o", str(jobid))
        first = out.splitlines()[0] if out.strip() else ""
        return dict(item.split("=", 1) for item in first.split() if "=" in item)


def _start(env: dict | None = None) -> tuple[dict[str, str], str]:
    proc = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "start"],
        capture_output=True,
        text=True,
        timeout=900,
        env=_clean_env(env),
    )
    info = dict(
        line.split("=", 1) for line in proc.stdout.splitlines() if re.match(r"^[A-Z_]+=", line)
    )
    if proc.returncode != 0 or "PARTITION" not in info:
        raise RuntimeError(
            f"tests/slurm/cluster.sh start failed (rc={proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return info, proc.stderr


def _stop() -> str:
    proc = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "stop"],
        capture_output=True,
        text=True,
        timeout=300,
        env=_clean_env(),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"tests/slurm/cluster.sh stop failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stderr


def _cluster(info: dict[str, str]) -> LiveSlurm:
    """The LiveSlurm that `cluster.sh start` described in its KEY=VALUE lines."""
    return LiveSlurm(
        partition=info["PARTITION"],
        partitions=info.get("PARTITIONS", info["PARTITION"]).split(","),
        node=info["NODE"],
        cpus=int(info["CPUS"]),
        real_memory_mb=int(info["REAL_MEMORY"]),
        gpus=int(info["GPUS"]),
        gpu_type=info.get("GPU_TYPE", ""),
        state_dir=Path(info["STATE_DIR"]),
        accounting=info.get("ACCOUNTING") == "1",
    )


def _started(env: dict | None = None) -> dict[str, str]:
    """Start the cluster (`env`: cluster.sh options) or fail the test with its output."""
    try:
        info, _ = _start(env)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        pytest.fail(f"could not start the local SLURM cluster:\n{exc}", pytrace=False)
    return info


@contextmanager
def _locked(path: Path, mode: int) -> Iterator[None]:
    """Hold an flock on `path` (fcntl.LOCK_SH or LOCK_EX) while the block runs."""
    with open(path, "a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class SharedCluster:
    """The one cluster of a pytest run, shared by its workers through files in `directory`
    (the run's common temporary directory): `lock` serialises starting, stopping and counting
    the attached workers (`users`); `cluster.json` holds what `cluster.sh start` printed; `usage`
    is held shared by every test that runs on the cluster and exclusively by the accounting
    tests, so that no test of another worker runs while they restart it."""

    def __init__(self, directory: Path):
        self.lock, self.users = directory / "slurm.lock", directory / "slurm.users"
        self.info, self.usage = directory / "slurm.json", directory / "slurm.usage"

    def _count(self, change: int) -> int:
        users = int(self.users.read_text()) if self.users.exists() else 0
        self.users.write_text(str(users + change))
        return users + change

    @contextmanager
    def attached(self) -> Iterator[None]:
        """Start the cluster unless another worker has, and stop it after the last one."""
        with _locked(self.lock, fcntl.LOCK_EX):
            if self._count(+1) == 1:
                self.info.write_text(json.dumps(_started()))
        try:
            yield
        finally:
            with _locked(self.lock, fcntl.LOCK_EX):
                if self._count(-1) == 0:
                    _stop()

    def cluster(self) -> LiveSlurm:
        """The running cluster, as its last start described it."""
        return _cluster(json.loads(self.info.read_text()))

    @contextmanager
    def restarted(self, env: dict) -> Iterator[LiveSlurm]:
        """The cluster alone, restarted with `env` (cluster.sh options) while the block runs,
        then started again as before."""
        with _locked(self.usage, fcntl.LOCK_EX):
            _stop()
            try:
                yield _cluster(_started(env))
            finally:
                _stop()
                self.info.write_text(json.dumps(_started()))


def _shared_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the workers of this pytest run meet: their common parent under pytest-xdist."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> Iterator[SharedCluster]:
    """The run's live cluster, started on first use (see the module docstring)."""
    if not enabled():
        pytest.skip(HOW_TO_RUN)
    if os.name != "posix" or os.geteuid() != 0:
        pytest.fail("the live SLURM tests need root (apt-get, /etc/slurm, munged)", pytrace=False)
    shared = SharedCluster(_shared_directory(tmp_path_factory))
    with shared.attached():
        yield shared


@pytest.fixture
def live_slurm(slurm_cluster) -> Iterator[LiveSlurm]:
    """The live one-node cluster, held shared for the test (see the module docstring)."""
    with _locked(slurm_cluster.usage, fcntl.LOCK_SH):
        yield slurm_cluster.cluster()


@pytest.fixture(scope="module")
def live_slurm_accounting(slurm_cluster) -> Iterator[LiveSlurm]:
    """The same cluster with accounting storage, for one test module: slurmdbd with a private
    MariaDB (cluster.sh installs Debian's slurmdbd and mariadb-server when missing), the user
    given ACCOUNT. Only one cluster runs at a time: the module waits until no test of another
    worker uses the cluster, restarts it with accounting and, afterwards, without."""
    with slurm_cluster.restarted(ACCOUNTING_ENV) as cluster:
        yield cluster

"""Where this snakemake run's jobs run, and the preflight of a run that submits to SLURM.

`check_executor` refuses backend local with an executor that submits jobs. `slurm_settings`
tells whether the run submits to SLURM, also on a dry run, where Snakemake swaps the executor
for its dry-run stand-in: the command line is then read again with Snakemake's own parser,
profile included (a few ms, and only for dry runs). Runs on this machine never call a SLURM
command. `check_cluster` reads the cluster once (`cluster`) and runs every check of
`preflight`. Planning layer: torch-free.
"""

import contextlib
import getpass
import io
import re
import shutil
import sys
import time

from skyquilt.planning.errors import ConfigError
from skyquilt.planning.slurm.cluster import read_cluster
from skyquilt.planning.slurm.preflight import StatusPolling, job_requests, preflight

# Default resources that name things, and a value that is just a name, maybe quoted.
NAMED_RESOURCES = ("slurm_partition", "slurm_account", "gpu_model")
PLAIN_NAME = re.compile(r"""^(['"]?)[\w.-]+\1$""")

# Executors that run jobs on this machine (dryrun and touch stand in for them in -n / -t).
LOCAL_EXECUTORS = ("local", "dryrun", "touch")


def check_executor(hardware: dict, executor: str | None) -> None:
    """Backend local runs every job here: refuse an executor that would submit them (sbatch)."""
    backend = hardware.get("backend", "local")
    if backend == "local" and executor is not None and executor not in LOCAL_EXECUTORS:
        raise ConfigError(
            f"hardware.backend: 'local', but snakemake runs the {executor!r} executor, which "
            "would submit the jobs elsewhere; set hardware.backend: slurm (with the SLURM "
            "profile), or run here with --cores N"
        )


def command_line_arguments() -> object | None:
    """This process's snakemake command line parsed as snakemake parses it (profiles
    applied), or None when it is not a snakemake command line (the Python API)."""
    from snakemake.cli import parse_args

    quiet = io.StringIO()
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            return parse_args(sys.argv[1:])[1]
    except (Exception, SystemExit):
        return None


def slurm_settings(workflow: object) -> tuple[object, int] | None:
    """(the SLURM executor's settings, seconds-between-status-checks) when this run submits
    to SLURM or dry-runs for it, else None."""
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    plugin = workflow.executor_plugin
    if plugin.name == "slurm":
        remote = workflow.remote_execution_settings
        return workflow.executor_settings, remote.seconds_between_status_checks
    if plugin.name != "dryrun":
        return None
    args = command_line_arguments()
    if args is None or getattr(args, "executor", None) != "slurm":
        return None
    settings = ExecutorPluginRegistry().get_plugin("slurm").get_settings(args)
    return settings, args.seconds_between_status_checks


def status_polling(settings: object, first_wait: int) -> StatusPolling:
    """How the SLURM executor polls job states, from its settings and
    seconds-between-status-checks (`slurm_settings`)."""
    return StatusPolling(
        command=settings.status_command,
        first_wait=int(first_wait),
        init_wait=int(settings.init_seconds_before_status_checks),
        sacct_installed=shutil.which("sacct") is not None,
    )


def constant_resources(workflow: object) -> dict:
    """Snakemake's default resources that do not depend on the job: numbers (mem_mb, runtime
    in minutes) and the names in NAMED_RESOURCES, which Snakemake keeps as expressions to be
    evaluated per job even when they are a plain name such as `slurm_partition=cpu`."""
    defaults = workflow.resource_settings.default_resources
    constants = {}
    for name, resource in (defaults or {}).items():
        if not resource.is_evaluable():
            constants[name] = resource.value
        elif name in NAMED_RESOURCES and PLAIN_NAME.match(str(resource.raw)):
            constants[name] = str(resource.raw).strip("'\"")
    return {name: value for name, value in constants.items() if value is not None}


def check_cluster(polling: StatusPolling, hardware: dict, resources: dict, defaults: dict) -> str:
    """Read the cluster (2-3 SLURM calls) and run the preflight on it; a one-line summary
    of what passed: how job states are read, and the partitions the run's jobs go to.
    resources: rule -> Snakemake resources from config['hardware']."""
    started = time.monotonic()
    cluster = read_cluster(getpass.getuser())
    requests = job_requests(hardware, resources, defaults)
    used = preflight(cluster, polling, hardware.get("account"), requests)
    status = polling.command_used(cluster.min_job_age)
    return (
        f"SLURM preflight passed in {time.monotonic() - started:.2f} s: job states via "
        f"{status} (accounting {cluster.accounting}, MinJobAge {cluster.min_job_age} s), "
        f"partitions {', '.join(sorted({partition.name for partition in used}))}"
    )

"""The SLURM executor as this snakemake run uses it: the preflight, and queue summaries.

`slurm_settings` tells whether the run submits to SLURM, also on a dry run, where Snakemake
swaps the executor for its dry-run stand-in: the command line is then read again with
Snakemake's own parser, profile included (a few ms, and only for dry runs). Runs on this
machine never call a SLURM command. `check_cluster` reads the cluster once (`cluster`) and runs
every check of `preflight`. `start_queue_summaries` logs, every few minutes while the run waits,
how many of its jobs SLURM lists in each state; the run's id comes from the executor's log line
(`listen_for_run_id`). Planning layer: torch-free.
"""

import contextlib
import getpass
import io
import logging
import re
import shutil
import sys
import threading
import time
from collections import Counter

from skyquilt.planning.cluster import read_cluster, slurm_output
from skyquilt.planning.config import ConfigError
from skyquilt.planning.preflight import StatusPolling, job_requests, preflight

# The executor plugin names its jobs after the run and logs the name once it starts.
RUN_ID_LINE = re.compile(r"SLURM run ID: (\S+)")
# Default resources that name things, and a value that is just a name, maybe quoted.
NAMED_RESOURCES = ("slurm_partition", "slurm_account", "gpu_model")
PLAIN_NAME = re.compile(r"""^(['"]?)[\w.-]+\1$""")


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


class RunIdListener(logging.Handler):
    """Remembers the run id that the executor plugin logs ('SLURM run ID: <id>')."""

    def __init__(self) -> None:
        super().__init__()
        self.run_id: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the run id if `record` is the plugin's line that names it."""
        match = RUN_ID_LINE.search(str(record.msg))
        if match:
            self.run_id = match.group(1)


def summarise_states(lines: str) -> str:
    """squeue '%T|%r' lines -> '2 PENDING (Resources: 2), 1 RUNNING, 3 COMPLETED'."""
    rows = [line.split("|", 1) for line in lines.splitlines() if "|" in line]
    if not rows:
        return "none listed (finished jobs leave squeue after the cluster's MinJobAge)"
    states = Counter(state for state, _ in rows)
    parts = []
    for state, count in sorted(states.items(), key=lambda item: -item[1]):
        reasons = Counter(reason for row_state, reason in rows if row_state == state)
        reasons.pop("None", None)
        why = ", ".join(f"{reason}: {n}" for reason, n in reasons.items())
        parts.append(f"{count} {state}" + (f" ({why})" if why and state == "PENDING" else ""))
    return ", ".join(parts)


def queue_summary(run_id: str) -> str:
    """One line: the run's jobs that SLURM lists, by state (one squeue call)."""
    try:
        lines = slurm_output(
            "squeue", "--noheader", "--states=all", f"--name={run_id}", "--format=%T|%r"
        )
    except ConfigError as error:
        return f"squeue gave no answer ({error})"
    return summarise_states(lines)


def listen_for_run_id(logger: logging.Logger) -> RunIdListener:
    """A RunIdListener on `logger` (Snakemake's), from now on."""
    listener = RunIdListener()
    logger.addHandler(listener)
    return listener


def report_queue(logger: logging.Logger, listener: RunIdListener, every: float) -> None:
    """Forever: every `every` seconds, once the run has submitted jobs, log their states."""
    while True:
        time.sleep(every)
        if listener.run_id is not None:
            logger.info(
                f"skyquilt: waiting on SLURM jobs of run {listener.run_id}: "
                f"{queue_summary(listener.run_id)}"
            )


def start_queue_summaries(
    logger: logging.Logger, listener: RunIdListener, every: float
) -> threading.Thread:
    """Log the SLURM jobs of the run that `listener` learnt the id of, by state, every
    `every` seconds, in a daemon thread (it ends with snakemake), so that a stuck run never
    looks like a slow one."""
    thread = threading.Thread(
        target=report_queue, args=(logger, listener, every), name="slurm-queue", daemon=True
    )
    thread.start()
    return thread

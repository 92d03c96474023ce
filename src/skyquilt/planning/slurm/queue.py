"""Queue summaries: while a SLURM run waits, how many of its jobs SLURM lists in each state.

The executor plugin names every job of a run after the run's id and logs that id once it
starts (`listen_for_run_id` catches the line); `start_queue_summaries` then logs the run's jobs
by state every few minutes (one squeue call each), so that a stuck run never looks like a slow
one. Torch-free.
"""

import logging
import re
import threading
import time
from collections import Counter

from skyquilt.planning.errors import ConfigError
from skyquilt.planning.slurm.cluster import slurm_output

# The executor plugin names its jobs after the run and logs the name once it starts.
RUN_ID_LINE = re.compile(r"SLURM run ID: (\S+)")


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

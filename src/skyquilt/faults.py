"""Test-only fault injection: stop a job at a named point so that a test can kill it there.

    SKYQUILT_PAUSE_AT="<job>@<point>[,<job>@<point>...]"

job: "<size>/<date label>/<member>" for a generation job (e.g. "12/2000-04-03T00/1"),
"aggregate/<size>" for an aggregate job. point: "step:<n>" (after sampler step n),
"write" (a shard's temporary store is complete, right before it is renamed into place),
"member:<n>" (the aggregate wrote n members into its temporary store).

The process logs one line with its pid and stops itself with SIGSTOP, so the test finds it
at exactly that point and sends SIGKILL (a scheduler killing the job) or SIGCONT (carry on).
Without the variable every call is a no-op.
"""

import logging
import os
import signal

PAUSE_VARIABLE = "SKYQUILT_PAUSE_AT"
PAUSED_MESSAGE = "paused at"

log = logging.getLogger("skyquilt")


def pause_point(job: str, point: str) -> None:
    """Stop this process if SKYQUILT_PAUSE_AT names `job`@`point`."""
    if f"{job}@{point}" not in os.environ.get(PAUSE_VARIABLE, "").split(","):
        return
    log.warning("%s: %s %s@%s (pid %d)", PAUSE_VARIABLE, PAUSED_MESSAGE, job, point, os.getpid())
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGSTOP)

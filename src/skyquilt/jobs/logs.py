"""What every job shares: its log file, log lines, and a clear line for a full disk.

Every script of scripts/ runs its whole body inside `job_log(snakemake.log[0])`, so that the
rule's log ends with the error and its traceback when the job fails (the generate rule's
shell command redirects stderr to its log instead). Kept free of torch so that jobs which do
not need it (the aggregate) start quickly and small, and so that a failing import of the
job's modules is caught too.
"""

import contextlib
import errno
import logging
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

log = logging.getLogger("skyquilt")


class DiskFullError(OSError):
    """The file system of an output ran out of space; nothing was left at the output."""


@contextmanager
def reporting_full_disk(output: str) -> Iterator[None]:
    """Turn ENOSPC while writing `output` into one clear line in the job's log.

    The stores are written atomically, so the failed write has already been removed.
    """
    try:
        yield
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        message = (
            f"no space left on the device of {output}; nothing was written there. "
            "Free space (or set output_dir to a larger file system) and rerun"
        )
        log.error(message)
        raise DiskFullError(message) from error


def _report(stream: TextIO) -> None:
    """Close open progress bars (they would print after the traceback when the interpreter
    exits), then write the current exception's traceback to `stream`."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
    traceback.print_exc(file=stream)
    stream.flush()


@contextmanager
def failure_last(stream: TextIO | None = None, exit_quietly: bool = False) -> Iterator[None]:
    """On an exception, write its traceback to `stream` (default: stderr) as the last thing.

    exit_quietly: then exit with status 1 instead of raising it again, for jobs whose stderr
    is the log itself (the generate rule's shell redirect), where Python would print the
    traceback a second time.
    """
    try:
        yield
    except SystemExit as error:
        if error.code not in (None, 0):
            _report(stream or sys.stderr)
        raise
    except BaseException:
        _report(stream or sys.stderr)
        if exit_quietly:
            raise SystemExit(1) from None
        raise


@contextmanager
def job_log(path: str | Path, capture_stderr: bool = True) -> Iterator[TextIO]:
    """The job's log file, open for the whole job; on failure it ends with the traceback.

    Arguments:
        path: the rule's log file (`snakemake.log[0]`), written anew.
        capture_stderr: send stderr (log lines, warnings, progress bars) to the log while
            the job runs; the demo jobs keep their progress bars on the console instead.

    The exception is raised again, so the job still fails (and the console shows it too).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", buffering=1) as log:
        redirect = contextlib.redirect_stderr(log) if capture_stderr else contextlib.nullcontext()
        try:
            with failure_last(log), redirect:
                yield log
        finally:
            logging.getLogger().handlers.clear()  # they may write to `log`, closed next


def configure_logging() -> None:
    """Log lines with timestamps to stderr, which the rules send to their log file."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
        force=True,
    )

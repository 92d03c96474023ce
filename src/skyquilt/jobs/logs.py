"""What every job shares: log lines to the rule's log file, and a clear line for a full disk.

Kept free of torch so that jobs which do not need it (the aggregate) start quickly and small.
"""

import errno
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

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


def configure_logging() -> None:
    """Log lines with timestamps to stderr, which the rules send to their log file."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
        force=True,
    )

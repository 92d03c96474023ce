"""The aggregate job, called by scripts/aggregate.py: all members of one trajectory size."""

import logging
import time
from pathlib import Path

from skyquilt.faults import pause_point
from skyquilt.job_logs import configure_logging, reporting_full_disk
from skyquilt.memory import release_large_buffers
from skyquilt.stores import ShardError, aggregate

log = logging.getLogger("skyquilt")


def run_aggregate(
    shards: list[str], output: str, expected: dict, start_dates: list[str], members: list[int]
) -> None:
    """Merge the shards of one trajectory size (listed date-major, member-minor)."""
    configure_logging()
    release_large_buffers()  # one member's buffers at a time, returned when freed
    slots = [(label, member) for label in start_dates for member in members]
    if len(slots) != len(shards):
        raise ValueError(f"{len(shards)} shards for {len(slots)} (start date, member) slots")
    began = time.perf_counter()
    job = f"aggregate/{expected.get('trajectory_size')}"
    try:
        with reporting_full_disk(output):
            aggregate(
                dict(zip(slots, map(Path, shards), strict=True)),
                Path(output),
                expected,
                start_dates,
                members,
                on_member=lambda written: pause_point(job, f"member:{written}"),
            )
    except ShardError as error:
        log.error("%s", error)  # the job's log names the bad shard and how to regenerate it
        raise
    log.info(
        "aggregated %d shards into %s in %.2f s", len(shards), output, time.perf_counter() - began
    )

"""The verify job: re-check every finished shard and aggregate, and move the damaged aside.

Snakemake never re-reads the outputs of finished jobs, so damage done later (a truncated or
deleted chunk, a flipped bit) would go unnoticed. This job reads every shard (`read_shard`:
structure, its member request's provenance, shape, checksum) and every aggregate
(`check_trajectories`: structure, the run's provenance, shape, every member's checksum).
A damaged output is moved out of the run, to

    <output_dir>/damaged/<run>/<UTC time>/<its path under <output_dir>/prior/<run>>

so that the next plain `snakemake` regenerates exactly those (a damaged shard also makes
its aggregate rerun, as its input is then newer) and nothing else; the moved copies are kept
for inspection and can be deleted. The job fails when it found damage, its log naming every
damaged file; outputs not made yet are listed, not judged.
"""

import datetime as dt
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from skyquilt.io.shards import MEMBER_KEYS, ShardError, read_shard
from skyquilt.io.trajectories import TrajectoriesError, check_trajectories
from skyquilt.jobs.logs import configure_logging
from skyquilt.sampling.request import RunSettings

log = logging.getLogger("skyquilt")


class DamagedOutputs(RuntimeError):
    """Verification found damaged outputs; they were moved aside."""


def quarantine(path: Path, prior_dir: Path, damaged_dir: Path) -> Path:
    """Move `path` (under `prior_dir`) to the same place under `damaged_dir`."""
    target = damaged_dir / path.relative_to(prior_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(path, target)
    return target


def _check_aggregate(
    path: str,
    settings: RunSettings,
    size: int,
    start_dates: Sequence[str],
    members: Sequence[int],
    latent_shape: tuple[int, ...],
    checksums: dict[tuple[int, str, int], str],
) -> None:
    """Check the aggregate of one size against the run and its (checked) shards' checksums."""
    request = settings.member(size, start_dates[0], members[0]).provenance()
    expected = {key: value for key, value in request.items() if key not in MEMBER_KEYS}
    shard_checksums = {
        (label, member): digest
        for (slot_size, label, member), digest in checksums.items()
        if slot_size == size
    }
    check_trajectories(path, expected, start_dates, members, latent_shape, shard_checksums)


def _quarantine_all(damaged: dict[str, str], prior_dir: str, damaged_dir: str) -> None:
    """Move every damaged output aside, log each, and raise DamagedOutputs naming them."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    moved_to = Path(damaged_dir) / stamp
    for path, problem in sorted(damaged.items()):
        log.error("damaged: %s", problem)
        target = quarantine(Path(path), Path(prior_dir), moved_to)
        log.error("moved %s to %s", path, target)
    raise DamagedOutputs(
        f"{len(damaged)} damaged output(s), moved to {moved_to}: {', '.join(sorted(damaged))}; "
        "run snakemake again to regenerate exactly those (and their aggregates)"
    )


def run_verify(
    settings: RunSettings,
    sizes: Sequence[int],
    start_dates: Sequence[str],
    members: Sequence[int],
    latent_shape: tuple[int, ...],
    shards: Sequence[str],
    trajectories: Sequence[str],
    prior_dir: str,
    damaged_dir: str,
    threads: int = 1,
) -> dict[str, str]:
    """Check every shard and aggregate of a run; move the damaged ones to `damaged_dir`.

    Arguments:
        shards: every shard path, size-major, then start date, then member.
        trajectories: the aggregate of every size, in the order of `sizes`.
        prior_dir: <output_dir>/prior/<run>, where all of them lie.
        damaged_dir: <output_dir>/damaged/<run>; a subdirectory per verification.

    Returns {path: problem} of the damaged outputs (empty when none); raises DamagedOutputs
    after moving them when there are any.
    """
    configure_logging()
    slots = [(size, label, member) for size in sizes for label in start_dates for member in members]
    if len(slots) != len(shards) or len(sizes) != len(trajectories):
        raise ValueError(f"{len(shards)} shards for {len(slots)} members")
    damaged: dict[str, str] = {}
    missing: list[str] = []
    checksums: dict[tuple[int, str, int], str] = {}

    def check_shard(item: tuple[tuple[int, str, int], str]) -> None:
        slot, path = item
        if not os.path.exists(path):
            missing.append(path)
            return
        try:
            shard = read_shard(path, settings.member(*slot).provenance(), latent_shape)
            checksums[slot] = shard.attrs["checksum"]
        except ShardError as error:
            damaged[path] = str(error)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(check_shard, zip(slots, shards, strict=True)))
    for size, path in zip(sizes, trajectories, strict=True):
        if not os.path.exists(path):
            missing.append(path)
            continue
        try:
            _check_aggregate(path, settings, size, start_dates, members, latent_shape, checksums)
        except TrajectoriesError as error:
            damaged[path] = str(error)
    checked = len(shards) + len(trajectories) - len(missing)
    log.info("checked %d shards and aggregates; %d damaged", checked, len(damaged))
    for path in sorted(missing):
        log.info("not made yet (a plain run makes it): %s", path)
    if damaged:
        _quarantine_all(damaged, prior_dir, damaged_dir)
    return damaged

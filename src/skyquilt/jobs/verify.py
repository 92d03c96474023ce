"""The verify job: re-check every finished output, and move the damaged and stale aside.

Snakemake never re-reads the outputs of finished jobs, so damage done later (a truncated or
deleted chunk, a flipped bit) would go unnoticed. This job reads every shard (`read_shard`:
structure, its member request's provenance, shape, checksum) and every aggregate
(`check_trajectories`: structure, the run's provenance, shape, every member's checksum).

An output is stale when the content of an input it records (attribute `inputs`, see
skyquilt.io.fingerprints) has changed since it was made: weights copied over in place, a
chunk of the dataset rewritten, whatever the files' times. Shards, aggregates, decoded
members, evaluations (`metrics.zarr`) and ensemble statistics are checked so, each input
fingerprinted once. Outputs made before skyquilt recorded fingerprints are counted, not
judged. Decoded members are also checked against the checksums of their values
(`check_forecast`).

A damaged or stale output is moved out of the run, to

    <output_dir>/damaged/<run>/<UTC time>/<its path under <output_dir>/prior/<run>>

so that the next plain `snakemake` regenerates exactly those (a damaged shard also makes
its aggregate rerun, as its input is then newer; a moved `metrics.zarr` reruns its
evaluation) and nothing else; the moved copies are kept for inspection and can be deleted.
The job fails when it found damage or staleness, its log naming every such file and why;
outputs not made yet are listed, not judged.
"""

import datetime as dt
import functools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import zarr

from skyquilt.io.fingerprints import INPUTS, stale_inputs
from skyquilt.io.forecasts import ForecastError, check_forecast
from skyquilt.io.shards import MEMBER_KEYS, ShardError, read_shard
from skyquilt.io.trajectories import TrajectoriesError, check_trajectories
from skyquilt.jobs.logs import configure_logging
from skyquilt.sampling.request import RunSettings

log = logging.getLogger("skyquilt")


class DamagedOutputs(RuntimeError):
    """Verification found damaged or stale outputs; they were moved aside."""


class Findings:
    """What verification found: {path: line} of damaged and stale outputs, the outputs that
    record no inputs, and the inputs' current fingerprints (computed once each)."""

    def __init__(self) -> None:
        self.problems: dict[str, str] = {}
        self.unrecorded: list[str] = []
        self.memo: dict[str, str] = {}

    def check_inputs(self, path: str, attrs: dict, kind: str) -> None:
        """Note `path` as stale when an input it records (`attrs[INPUTS]`) has changed."""
        if INPUTS not in attrs:
            self.unrecorded.append(path)
            return
        stale = stale_inputs(attrs[INPUTS], self.memo)
        if stale:
            self.problems[path] = f"stale: {kind} {path}: {'; '.join(stale)}"


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


def _quarantine_all(problems: dict[str, str], prior_dir: str, damaged_dir: str) -> None:
    """Move every damaged or stale output aside, log each, and raise DamagedOutputs naming
    them."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    moved_to = Path(damaged_dir) / stamp
    for path, problem in sorted(problems.items()):
        log.error("%s", problem)
        target = quarantine(Path(path), Path(prior_dir), moved_to)
        log.error("moved %s to %s", path, target)
    stale = sum(problem.startswith("stale:") for problem in problems.values())
    raise DamagedOutputs(
        f"{len(problems) - stale} damaged and {stale} stale output(s), moved to {moved_to}: "
        f"{', '.join(sorted(problems))}; run snakemake again to regenerate exactly those (and "
        "what was made from them)"
    )


def _check_recorded(findings: Findings, paths: Sequence[str]) -> int:
    """Check the outputs of `paths` that exist (decoded members, evaluations, statistics)
    against the inputs they record; the number checked."""
    checked = 0
    for path in paths:
        if not os.path.exists(path):
            continue
        checked += 1
        try:
            attrs = zarr.open_group(path, mode="r").attrs.asdict()
            check_forecast(path)
        except ForecastError as error:
            findings.problems[path] = f"damaged: {error}"
            continue
        except Exception as error:  # zarr raises many types for broken stores
            findings.problems[path] = f"damaged: {path} cannot be opened ({error})"
            continue
        findings.check_inputs(path, attrs, "output")
    return checked


def _check_output(
    path: str, kind: str, read: Callable[[], Mapping], findings: "Findings", missing: list[str]
) -> None:
    """One shard or aggregate (`kind`): missing (listed in `missing`), damaged (what `read`
    raises, as its problem) or read, its attributes (what `read` returns) then checked against
    the fingerprints of its inputs."""
    if not os.path.exists(path):
        missing.append(path)
        return
    try:
        attrs = read()
    except (ShardError, TrajectoriesError) as error:
        findings.problems[path] = f"damaged: {error}"
        return
    findings.check_inputs(path, attrs, kind)


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
    recorded: Sequence[str] = (),
) -> dict[str, str]:
    """Check every shard and aggregate of a run, and the other outputs that record their
    inputs; move the damaged and stale ones to `damaged_dir`.

    Arguments:
        shards: every shard path, size-major, then start date, then member.
        trajectories: the aggregate of every size, in the order of `sizes`.
        prior_dir: <output_dir>/prior/<run>, where all of them lie.
        damaged_dir: <output_dir>/damaged/<run>; a subdirectory per verification.
        recorded: decoded members, evaluations (metrics.zarr) and statistics that may exist.

    Returns {path: problem} of the damaged and stale outputs (empty when none); raises
    DamagedOutputs after moving them when there are any.
    """
    configure_logging()
    slots = [(size, label, member) for size in sizes for label in start_dates for member in members]
    if len(slots) != len(shards) or len(sizes) != len(trajectories):
        raise ValueError(f"{len(shards)} shards for {len(slots)} members")
    findings, missing = Findings(), []
    checksums: dict[tuple[int, str, int], str] = {}

    def read_shard_attrs(slot: tuple[int, str, int], path: str) -> Mapping:
        shard = read_shard(path, settings.member(*slot).provenance(), latent_shape)
        checksums[slot] = shard.attrs["checksum"]
        return shard.attrs

    def read_aggregate_attrs(size: int, path: str) -> Mapping:
        _check_aggregate(path, settings, size, start_dates, members, latent_shape, checksums)
        return zarr.open_group(path, mode="r").attrs.asdict()

    def check_shard(item: tuple[tuple[int, str, int], str]) -> None:
        slot, path = item
        read = functools.partial(read_shard_attrs, slot, path)
        _check_output(path, "shard", read, findings, missing)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(check_shard, zip(slots, shards, strict=True)))
    for size, path in zip(sizes, trajectories, strict=True):
        read = functools.partial(read_aggregate_attrs, size, path)
        _check_output(path, "aggregate", read, findings, missing)
    checked = len(shards) + len(trajectories) - len(missing)
    _log_findings(findings, checked, _check_recorded(findings, recorded), missing)
    if findings.problems:
        _quarantine_all(findings.problems, prior_dir, damaged_dir)
    return findings.problems


def _log_findings(findings: Findings, checked: int, other: int, missing: Sequence[str]) -> None:
    """Log what was checked and found (`other`: decoded members, evaluations, statistics)."""
    stale = sum(problem.startswith("stale:") for problem in findings.problems.values())
    log.info(
        "checked %d shards and aggregates; %d damaged, %d stale (with %d decoded members, "
        "evaluations and statistics)",
        checked, len(findings.problems) - stale, stale, other,
    )  # fmt: skip
    if findings.unrecorded:
        log.info(
            "%d output(s) record no fingerprints of their inputs (made by an older skyquilt), "
            "so whether they are stale cannot be told, e.g. %s",
            len(findings.unrecorded), sorted(findings.unrecorded)[0],
        )  # fmt: skip
    for path in sorted(missing):
        log.info("not made yet (a plain run makes it): %s", path)

"""The aggregate job, run by scripts/aggregate.py: all members of one trajectory size."""

import logging
import time
from pathlib import Path

from skyquilt.io.fingerprints import SHOWN, mixed_inputs
from skyquilt.io.shards import ShardError, recorded_inputs
from skyquilt.io.trajectories import merge_shards
from skyquilt.jobs.logs import configure_logging, reporting_full_disk
from skyquilt.jobs.memory import release_large_buffers
from skyquilt.sampling.request import RunSettings

log = logging.getLogger("skyquilt")


def run_aggregate(
    shards: list[str],
    output: str,
    settings: RunSettings,
    size: int,
    start_dates: list[str],
    members: list[int],
    latent_shape: tuple[int, ...] | None = None,
) -> None:
    """Merge the shards of one trajectory size (listed date-major, member-minor).

    Every shard must carry the provenance of its member's request under `settings`.
    """
    configure_logging()
    release_large_buffers()  # one member's buffers at a time, returned when freed
    slots = [(label, member) for label in start_dates for member in members]
    if len(slots) != len(shards):
        raise ValueError(f"{len(shards)} shards for {len(slots)} (start date, member) slots")
    expected = {slot: settings.member(size, *slot).provenance() for slot in slots}
    began = time.perf_counter()
    try:
        check_one_denoiser(shards, settings)
        with reporting_full_disk(output):
            merge_shards(
                dict(zip(slots, map(Path, shards), strict=True)),
                Path(output),
                expected,
                start_dates,
                members,
                shape=latent_shape,
            )
    except ShardError as error:
        log.error("%s", error)  # the job's log names the bad shard and how to regenerate it
        raise
    log.info(
        "aggregated %d shards into %s in %.2f s", len(shards), output, time.perf_counter() - began
    )


def check_one_denoiser(shards: list[str], settings: RunSettings) -> None:
    """Every shard was sampled from the same denoiser (config and weights, by content), the
    one the run was planned with; else a ShardError naming the members and fingerprints."""
    recorded = {path: recorded_inputs(path) for path in shards}
    mixed = mixed_inputs(recorded)
    if mixed is not None:
        raise ShardError(
            f"{mixed}; an ensemble is sampled from one denoiser: regenerate the members of the "
            "other (delete their shards, or run snakemake --forcerun <shard>)"
        )
    denoiser = recorded[shards[0]].get("denoiser")
    planned = settings.model_fingerprint
    if planned is not None and (denoiser is None or denoiser["fingerprint"] != planned):
        found = "none" if denoiser is None else denoiser["fingerprint"][:SHOWN]
        raise ShardError(
            f"every member records denoiser fingerprint {found}, but the denoiser of "
            f"{settings.model_path} ({settings.model_target}) has fingerprint "
            f"{planned[:SHOWN]}; regenerate them (delete them, or run snakemake --forcerun "
            "generate)"
        )

"""The generation job: one ensemble member, run by scripts/generate.py (possibly under torchrun)."""

import logging
import os
import signal
import time
from pathlib import Path

import torch
import torch.distributed as dist

from skyquilt import __version__
from skyquilt.io.shards import write_shard
from skyquilt.jobs.logs import configure_logging, reporting_full_disk
from skyquilt.models.config import ModelConfig
from skyquilt.planning.resources import TIME_LIMIT_SIGNAL
from skyquilt.sampling.checkpoints import (
    Checkpointer,
    CheckpointPolicy,
    discard_checkpoint,
    fingerprint,
    read_checkpoint,
)
from skyquilt.sampling.composition import ProcessSplit
from skyquilt.sampling.generation import MemberResult, generate_member, load_models
from skyquilt.sampling.request import MemberRequest
from skyquilt.sampling.stopping import SamplingStopped, StopRequest

log = logging.getLogger("skyquilt")

# The exit status of a job whose sampling a signal stopped, its checkpoint written: sysexits.h's
# EX_TEMPFAIL, "try again later". Snakemake reruns the failed job (the SLURM profile's
# `retries`), and the rerun resumes from the checkpoint.
STOPPED_STATUS = 75
# Signals on which a job checkpoints and ends after its current sampler step: SLURM's warning
# before the time limit (see skyquilt.planning.resources), SIGTERM (`kill`, torchrun passing
# one on) and SIGUSR1 (for batch scripts of one's own that forward `sbatch --signal=B:USR1`).
# SIGINT (Ctrl-C) still ends a job at once.
STOP_SIGNALS = (signal.Signals[f"SIG{TIME_LIMIT_SIGNAL}"], signal.SIGTERM, signal.SIGUSR1)


def start_processes() -> tuple[ProcessSplit, torch.device]:
    """This process's rank and device; joins the process group when run under torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world_size > 1:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        return ProcessSplit(dist.get_rank(), world_size), device
    return ProcessSplit(), device


def shard_attributes(
    request: MemberRequest,
    model: ModelConfig,
    result: MemberResult,
    split: ProcessSplit,
    device: torch.device,
    seconds: float,
) -> dict:
    """A shard's provenance: the request's, then how the member was made."""
    return request.provenance() | {
        "blanket_size": model.blanket_size,
        "padded_size": result.padded_size,
        "blankets": result.blanket_count,
        "member_seed": request.seed,
        "processes": split.world_size,
        "device": str(device),
        "skyquilt_version": __version__,
        "wall_time_s": round(seconds, 3),
    }


def find_checkpoint(
    request: MemberRequest, checkpoint: Path, split: ProcessSplit
) -> tuple[dict | None, str | None]:
    """The member's checkpoint if it may be resumed, and its fingerprint (None: not computed).

    Every rank reads it; then they wait for each other, and rank 0 discards one that must
    not be resumed, so that no rank reads a file that rank 0 removes or rewrites.
    """
    stamp, payload, reason = None, None, None
    if checkpoint.is_file():
        stamp = fingerprint(request)
        payload, reason = read_checkpoint(checkpoint, stamp)
    if split.world_size > 1:
        dist.barrier()
    if reason is not None and split.rank == 0:
        discard_checkpoint(checkpoint, reason)
    return payload, stamp


def run_generation(
    request: MemberRequest,
    output: str,
    threads: int,
    checkpoint: Path | None = None,
    policy: CheckpointPolicy | None = None,
) -> int:
    """Generate one member and write its shard (rank 0 only) atomically; the exit status.

    With `checkpoint` (a file outside the shard), the sampler state is saved there by
    `policy` (rank 0 only), a valid checkpoint found there is resumed by every rank, and it
    is removed once the shard is written. Then a signal of STOP_SIGNALS stops sampling after
    the current step with the state saved there, and the status is STOPPED_STATUS (else 0).
    """
    configure_logging()
    stop = StopRequest()
    with stop.install(STOP_SIGNALS if checkpoint is not None else ()):
        split, device = start_processes()
        try:
            _generate(request, output, threads, split, device, checkpoint, policy, stop)
        except SamplingStopped as stopped:
            if split.rank == 0:
                log.warning(
                    "%s; exiting with status %d: the job's rerun resumes from there",
                    stopped, STOPPED_STATUS,
                )  # fmt: skip
            return STOPPED_STATUS
        finally:
            if split.world_size > 1:
                dist.destroy_process_group()
    return 0


def _checkpointer(
    request: MemberRequest,
    checkpoint: Path,
    policy: CheckpointPolicy | None,
    split: ProcessSplit,
    device: torch.device,
    stop: StopRequest,
) -> tuple[Checkpointer, dict | None]:
    """The member's checkpointer, and the checkpoint to resume (None: start afresh)."""
    resume, stamp = find_checkpoint(request, checkpoint, split)
    checkpointer = Checkpointer(
        checkpoint,
        policy or CheckpointPolicy(),
        stamp,
        request,
        device,
        write=split.rank == 0,
        stop=stop,
        distributed=split.world_size > 1,
    )
    return checkpointer, resume


def _generate(
    request: MemberRequest,
    output: str,
    threads: int,
    split: ProcessSplit,
    device: torch.device,
    checkpoint: Path | None,
    policy: CheckpointPolicy | None,
    stop: StopRequest,
) -> None:
    """The body of `run_generation`, in the processes `split` on `device`."""
    torch.set_num_threads(max(1, threads // split.world_size))
    began = time.perf_counter()
    settings = request.settings
    denoiser, model, coarse = load_models(settings)
    log.info(
        "member %s of %s (%s weights)", request.name, settings.model_path, settings.model_target
    )
    checkpointer, resume = None, None
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        checkpointer, resume = _checkpointer(request, checkpoint, policy, split, device, stop)
    result = generate_member(
        denoiser.to(device),
        model,
        request,
        device=device,
        split=split,
        checkpointer=checkpointer,
        resume=resume,
        coarse=coarse,
    )
    if result.blanket_count < split.world_size:
        log.warning(
            "%d processes for %d blankets: %d of them stayed idle",
            split.world_size, result.blanket_count, split.world_size - result.blanket_count,
        )  # fmt: skip
    if split.rank == 0:
        seconds = time.perf_counter() - began
        attrs = shard_attributes(request, model, result, split, device, seconds)
        with reporting_full_disk(output):
            write_shard(Path(output), result.latent, result.times, attrs)
        log.info("wrote %s", output)
        if checkpoint is not None and checkpoint.exists():
            checkpoint.unlink(missing_ok=True)
            log.info("removed checkpoint %s", checkpoint)
    if split.world_size > 1:
        dist.barrier()

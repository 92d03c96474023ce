"""The generation job: one ensemble member, run by scripts/generate.py (possibly under torchrun)."""

import logging
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

from skyquilt import __version__
from skyquilt.io.shards import write_shard
from skyquilt.jobs.logs import configure_logging, reporting_full_disk
from skyquilt.models.config import ModelConfig
from skyquilt.models.weights import load_denoiser
from skyquilt.sampling.checkpoints import (
    Checkpointer,
    CheckpointPolicy,
    discard_checkpoint,
    fingerprint,
    read_checkpoint,
)
from skyquilt.sampling.composition import ProcessSplit
from skyquilt.sampling.generation import MemberResult, generate_member
from skyquilt.sampling.request import MemberRequest

log = logging.getLogger("skyquilt")


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
) -> None:
    """Generate one member and write its shard (rank 0 only) atomically.

    With `checkpoint` (a file outside the shard), the sampler state is saved there by
    `policy` (rank 0 only), a valid checkpoint found there is resumed by every rank, and it
    is removed once the shard is written.
    """
    configure_logging()
    split, device = start_processes()
    torch.set_num_threads(max(1, threads // split.world_size))
    began = time.perf_counter()
    settings = request.settings
    denoiser, model = load_denoiser(
        Path(settings.model_path), settings.model_target, settings.trust_model_code
    )
    log.info(
        "member %s of %s (%s weights)", request.name, settings.model_path, settings.model_target
    )
    checkpointer, resume = None, None
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        resume, stamp = find_checkpoint(request, checkpoint, split)
        checkpointer = Checkpointer(
            checkpoint, policy or CheckpointPolicy(), stamp, request, device, split.rank == 0
        )
    result = generate_member(
        denoiser.to(device),
        model,
        request,
        device=device,
        split=split,
        checkpointer=checkpointer,
        resume=resume,
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
        dist.destroy_process_group()

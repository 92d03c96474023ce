"""The generation job: one ensemble member, run by scripts/generate.py (possibly under torchrun).

`main` reads the job's command line (written by rule `generate`), `run_generation` samples the
member and writes its shard, checkpointing and resuming as `generation.checkpoint` asks.
"""

import argparse
import logging
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist

from skyquilt import __version__
from skyquilt.io.fingerprints import INPUTS, SHOWN, files_record
from skyquilt.io.shards import write_shard
from skyquilt.jobs.logs import configure_logging, failure_last, reporting_full_disk
from skyquilt.models.config import ModelConfig, ModelDirectory, ModelError
from skyquilt.models.precondition import BlanketDenoiser
from skyquilt.planning.plan import member_checkpoint
from skyquilt.planning.slurm.launcher import TIME_LIMIT_SIGNAL
from skyquilt.sampling.checkpoints import (
    Checkpointer,
    CheckpointPolicy,
    discard_checkpoint,
    fingerprint,
    read_checkpoint,
)
from skyquilt.sampling.composition import CoarseScale, ProcessSplit
from skyquilt.sampling.generation import MemberResult, generate_member, load_models
from skyquilt.sampling.request import MemberRequest, RunSettings
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
    denoiser: dict | None = None,
) -> dict:
    """A shard's provenance: the request's, the record of the denoiser's files
    (skyquilt.io.fingerprints), then how the member was made."""
    provenance = request.provenance()
    if denoiser is not None:
        provenance[INPUTS] = {"denoiser": denoiser}
    return provenance | {
        "blanket_size": model.blanket_size,
        "padded_size": result.padded_size,
        "blankets": result.blanket_count,
        "member_seed": request.seed,
        "processes": split.world_size,
        "device": str(device),
        "skyquilt_version": __version__,
        "wall_time_s": round(seconds, 3),
    }


def read_denoiser(
    settings: RunSettings,
) -> tuple[BlanketDenoiser, ModelConfig, CoarseScale | None, dict]:
    """The denoiser, its config, its coarse scale when the member composes two_scale, and the
    record of the files' content (config and weights, the coarse model's too for two_scale).

    Raises ModelError when their content is not what the workflow planned the run with
    (`settings.model_fingerprint`), or changed while they were loaded.
    """
    files = ModelDirectory(Path(settings.model_path)).denoiser_files(
        settings.model_target, settings.composition
    )
    record = files_record(files)
    planned, found = settings.model_fingerprint, record["fingerprint"]
    if planned is not None and found != planned:
        raise ModelError(
            f"the denoiser ({', '.join(record['files'])}) changed since the workflow was "
            f"planned (fingerprint {planned[:SHOWN]} then, {found[:SHOWN]} now); run snakemake "
            "again, which plans every member of the new one"
        )
    denoiser, model, coarse = load_models(settings)
    if files_record(files)["fingerprint"] != found:
        raise ModelError(f"the denoiser ({', '.join(record['files'])}) changed while it was read")
    return denoiser, model, coarse, record


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


@contextmanager
def naming_the_checkpoint(
    request: MemberRequest, checkpoint: Path | None, resume: dict | None
) -> Iterator[None]:
    """When the member resumed from `checkpoint` and fails, a log line and a note on the error
    name the checkpoint, so that it can be found and deleted to start the member over."""
    try:
        yield
    except SamplingStopped:
        raise
    except Exception as error:
        if resume is not None:
            note = (
                f"member {request.name} resumed from checkpoint {checkpoint} (step "
                f"{resume['state']['step']} of {resume['steps']}); delete it to start over"
            )
            log.error("%s: %s", note, error)
            error.add_note(note)
        raise


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
    denoiser, model, coarse, record = read_denoiser(settings)
    log.info(
        "member %s of %s (%s weights)", request.name, settings.model_path, settings.model_target
    )
    checkpointer, resume = None, None
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        checkpointer, resume = _checkpointer(request, checkpoint, policy, split, device, stop)
    with naming_the_checkpoint(request, checkpoint, resume):
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
        attrs = shard_attributes(request, model, result, split, device, seconds, record)
        with reporting_full_disk(output):
            write_shard(Path(output), result.latent, result.times, attrs)
        log.info("wrote %s", output)
        if checkpoint is not None and checkpoint.exists():
            checkpoint.unlink(missing_ok=True)
            log.info("removed checkpoint %s", checkpoint)
    if split.world_size > 1:
        dist.barrier()


def interval(text: str) -> float | None:
    """A checkpoint interval: a number, or 'none'."""
    return None if text.lower() in ("none", "null") else float(text)


def command_line() -> argparse.ArgumentParser:
    """The generation job's command line, as rule `generate` writes it."""
    parser = argparse.ArgumentParser(description="Generation job: one ensemble member.")
    parser.add_argument("--settings", required=True, help="JSON settings of the run")
    parser.add_argument("--size", required=True, help="trajectory size T")
    parser.add_argument("--date", required=True, help="start date label YYYY-MM-DDTHH")
    parser.add_argument("--member", required=True, help="member index")
    parser.add_argument("--output", required=True, help="shard path <...>/<member>.zarr")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", default=None, help="checkpoint file of the member")
    parser.add_argument(
        "--checkpoint-dir",
        default=None,
        help="checkpoints of the run: <dir>/<T>h/<date>/<member>.pt",
    )
    parser.add_argument("--checkpoint-every-steps", type=interval, default=None)
    parser.add_argument("--checkpoint-every-minutes", type=interval, default=10.0)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the generation job of the command line `argv` (default: sys.argv[1:]).

    Returns its exit status: 0, or STOPPED_STATUS when a signal stopped sampling with a
    checkpoint written. A failure ends the job's log (stderr) with its traceback.
    """
    arguments = command_line().parse_args(argv)
    settings = RunSettings.from_json(arguments.settings)
    request = settings.member(arguments.size, arguments.date, arguments.member)
    with failure_last(exit_quietly=True):  # stderr is the rule's log: it ends with the traceback
        checkpoint = arguments.checkpoint
        if checkpoint is None and arguments.checkpoint_dir is not None:
            checkpoint = member_checkpoint(
                arguments.checkpoint_dir, arguments.size, arguments.date, arguments.member
            )
        steps = arguments.checkpoint_every_steps
        policy = CheckpointPolicy(
            every_steps=None if steps is None else int(steps),
            every_minutes=arguments.checkpoint_every_minutes,
        )
        return run_generation(request, arguments.output, arguments.threads, checkpoint, policy)

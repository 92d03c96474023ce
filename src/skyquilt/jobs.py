"""The generation job, called by scripts/generate.py (possibly under torchrun)."""

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from skyquilt import __version__
from skyquilt.blankets import blanket_count
from skyquilt.composition import ProcessSplit
from skyquilt.faults import pause_point
from skyquilt.generation import MemberRequest, generate_member
from skyquilt.job_logs import configure_logging, reporting_full_disk
from skyquilt.models.directory import load_denoiser
from skyquilt.seeding import member_seed
from skyquilt.stores import write_shard

log = logging.getLogger("skyquilt")

# Fault injection for tests of failure handling: "<size>/<date>/<member>" fails that member.
FAIL_MEMBER_VARIABLE = "SKYQUILT_FAIL_MEMBER"


class InjectedFailure(RuntimeError):
    """Raised when SKYQUILT_FAIL_MEMBER names the member being generated."""


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


def run_generation(model_path: str, request_json: str, output: str, threads: int) -> None:
    """Generate one member and write its shard (rank 0 only) atomically."""
    configure_logging()
    settings = json.loads(request_json)
    split, device = start_processes()
    torch.set_num_threads(max(1, threads // split.world_size))
    size, label, member = settings["trajectory_size"], settings["start_date"], settings["member"]
    if os.environ.get(FAIL_MEMBER_VARIABLE) == f"{size}/{label}/{member}":
        raise InjectedFailure(f"{FAIL_MEMBER_VARIABLE} asks member {size}/{label}/{member} to fail")
    began = time.perf_counter()
    denoiser, model = load_denoiser(Path(model_path), settings["model_target"])
    denoiser = denoiser.to(device)
    blankets = blanket_count(size, model.blanket_size, settings["overlap"])
    if split.world_size > blankets:
        log.warning(
            "%d processes for %d blankets: %d of them stay idle",
            split.world_size, blankets, split.world_size - blankets,
        )  # fmt: skip
    seed = member_seed(settings["seed"], size, label, member)
    request = MemberRequest(
        trajectory_size=size,
        start_date=np.datetime64(label, "ns"),
        overlap=settings["overlap"],
        sampler=settings["sampler"],
        steps=settings["steps"],
        seed=seed,
        sampler_options=json.loads(settings["sampler_config"]),
        precision=settings["precision"],
        stitch=settings["stitch"],
        max_blankets_per_batch=settings["max_blankets_per_batch"],
    )
    log.info(
        "member %s/%s/%s of %s (%s weights)",
        size,
        label,
        member,
        model_path,
        settings["model_target"],
    )
    job = f"{size}/{label}/{member}"
    result = generate_member(
        denoiser,
        model,
        request,
        device=device,
        split=split,
        on_step=lambda step: pause_point(job, f"step:{step}"),
    )
    if split.rank == 0:
        attrs = {
            key: settings[key]
            for key in (
                "model_path", "model_target", "sampler", "sampler_config", "steps",
                "precision", "overlap", "stitch", "seed", "trajectory_size", "start_date",
                "member",
            )
        }  # fmt: skip
        attrs |= {
            "blanket_size": model.blanket_size,
            "padded_size": result.padded_size,
            "blankets": result.blanket_count,
            "member_seed": seed,
            "processes": split.world_size,
            "device": str(device),
            "skyquilt_version": __version__,
            "wall_time_s": round(time.perf_counter() - began, 3),
        }
        with reporting_full_disk(output):
            write_shard(
                Path(output),
                result.latent,
                result.times,
                attrs,
                before_commit=lambda: pause_point(job, "write"),
            )
        log.info("wrote %s", output)
    if split.world_size > 1:
        dist.barrier()
        dist.destroy_process_group()

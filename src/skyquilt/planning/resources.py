"""Hardware settings as Snakemake resources, and the command line that starts a generation job.

`config["hardware"]` has one section per kind of job; the seed config calls the generation
section `gen`, which this module maps onto the `generate` rule.
"""

import glob
import math
import os
import shlex
import sys

from skyquilt.planning.config import ConfigError, parse_memory, parse_slurm_time

BACKENDS = ("local", "slurm")

# Sections of config["hardware"], one per kind of job, and the rule each one sizes.
HARDWARE_SECTIONS = {
    "gen": "generate",
    "aggregate": "aggregate",
    "decode": "decode",
    "render": "render",
    "evaluate": "evaluate",
    "statistics": "statistics",
}


# The signal SLURM sends a generation job before its time limit (`sbatch --signal`), on which
# the job checkpoints and ends (skyquilt.sampling.stopping). Without the B: prefix SLURM signals
# every process of the job's steps: the generation processes, but also the Snakemake process
# and the shell that run them, which would die of USR1 (its default action) and take the job
# down before its checkpoint is written. URG is ignored by every process that does not handle
# it. With B:, only the batch shell that the executor plugin writes would get the signal.
TIME_LIMIT_SIGNAL = "URG"


def time_limit_warning(minutes: int) -> int:
    """Seconds before a time limit of `minutes` at which SLURM warns a generation job.

    A tenth of the limit, at least a minute and at most ten (a sampler step and a checkpoint
    must fit), and never more than half the limit. SLURM may send it up to a minute earlier.
    """
    seconds = 60 * minutes
    return min(max(seconds // 10, 60), 600, seconds // 2)


def hardware_resources(hardware: dict, section_name: str) -> dict:
    """Snakemake resources of the jobs sized by config['hardware'][section_name].

    cpus -> threads/cpus_per_task, ram -> mem_mb, time -> runtime (minutes),
    partition -> slurm_partition, account -> slurm_account, gpus -> gpu (+ gpu_model),
    nodes -> nodes when more GPUs than gpus_per_node are requested (always 1 with backend
    local, which runs every job on this machine). Generation jobs on SLURM with a time also
    get slurm_extra = --signal=URG@<seconds>: the warning before their time limit.
    """
    section = hardware.get(section_name) or {}
    prefix = f"hardware.{section_name}"
    local = hardware.get("backend", "local") == "local"
    resources: dict = {"cpus": int(section.get("cpus", 1))}
    if "ram" in section:
        resources["mem_mb"] = parse_memory(section["ram"], f"{prefix}.ram")
    if "time" in section:
        resources["runtime"] = parse_slurm_time(section["time"], f"{prefix}.time")
    gpus = int(section.get("gpus", 0))
    if gpus:
        per_node = int(hardware.get("gpus_per_node", gpus) or gpus)
        per_node = gpus if local else per_node
        resources["gpu"] = gpus
        resources["nodes"] = math.ceil(gpus / per_node)
        resources["gpus_per_node"] = min(gpus, per_node)
        if section.get("gpu_model"):
            resources["gpu_model"] = section["gpu_model"]
    if hardware.get("backend", "local") == "slurm":
        if section.get("partition"):
            resources["slurm_partition"] = section["partition"]
        if hardware.get("account"):
            resources["slurm_account"] = hardware["account"]
        resources["cpus_per_task"] = resources["cpus"]
        if section_name == "gen" and "runtime" in resources:
            warning = time_limit_warning(resources["runtime"])
            resources["slurm_extra"] = f"--signal={TIME_LIMIT_SIGNAL}@{warning}"
    return resources


def check_backend(hardware: dict) -> str:
    """hardware.backend, one of BACKENDS."""
    backend = hardware.get("backend", "local")
    if backend not in BACKENDS:
        raise ConfigError(
            f"hardware.backend: {backend!r} is unknown; allowed: {', '.join(BACKENDS)}"
        )
    return backend


# Executors that run jobs on this machine (dryrun and touch stand in for them in -n / -t).
LOCAL_EXECUTORS = ("local", "dryrun", "touch")


def check_executor(hardware: dict, executor: str | None) -> None:
    """Backend local runs every job here: refuse an executor that would submit them (sbatch)."""
    backend = hardware.get("backend", "local")
    if backend == "local" and executor is not None and executor not in LOCAL_EXECUTORS:
        raise ConfigError(
            f"hardware.backend: 'local', but snakemake runs the {executor!r} executor, which "
            "would submit the jobs elsewhere; set hardware.backend: slurm (with the SLURM "
            "profile), or run here with --cores N"
        )


def visible_gpu_count() -> int | None:
    """NVIDIA GPUs this machine shows (limited by CUDA_VISIBLE_DEVICES), without torch.

    None when no NVIDIA driver is seen at all (another vendor's GPU may still be there).
    """
    found = glob.glob("/proc/driver/nvidia/gpus/*") or [
        path for path in glob.glob("/dev/nvidia*") if path[len("/dev/nvidia") :].isdigit()
    ]
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None and not listed.strip():
        return 0  # every GPU hidden
    if not found:
        return None
    if listed is None:
        return len(found)
    return min(len(found), len([item for item in listed.split(",") if item.strip()]))


def generation_processes(
    hardware: dict, resources: dict, processes: int, visible: int | None = -1
) -> tuple[int, list[str]]:
    """Processes of a generation job, and warnings about what was lowered to run here.

    P GPUs (hardware.gen.gpus > 1) run P processes, else `generation.processes` CPU
    processes. With backend local every job runs on this machine: more GPUs than
    gpus_per_node never become several nodes, and more GPUs than this machine shows are
    lowered to those it shows (`resources`, the generate rule's, is changed to match).
    visible: GPUs shown here (default: `visible_gpu_count()`).
    """
    gpus = int(resources.get("gpu", 0))
    if gpus == 1 and processes > 1:
        raise ConfigError(
            f"generation.processes: {processes} CPU processes, but hardware.gen.gpus is 1; "
            "with GPUs a job runs one process per GPU, so set hardware.gen.gpus instead"
        )
    if hardware.get("backend", "local") != "local" or not gpus:
        return (gpus if gpus > 1 else processes), []
    warnings = []
    per_node = hardware.get("gpus_per_node")
    if per_node and gpus > per_node:
        warnings.append(
            f"hardware.gen.gpus: {gpus} GPUs are more than gpus_per_node = {per_node}, but "
            f"backend local runs every job on this machine, on one node: generation jobs "
            f"run {gpus} processes here, under one torchrun --standalone"
        )
    visible = visible_gpu_count() if visible == -1 else visible
    if visible is not None and 0 < visible < gpus:
        lowered = visible if visible > 1 else processes
        warnings.append(
            f"hardware.gen.gpus: {gpus}, but this machine shows {visible} GPU(s) (backend "
            f"local): generation jobs ask for {visible} GPU(s) and run {lowered} process(es)"
        )
        gpus = resources["gpu"] = resources["gpus_per_node"] = visible
    elif not visible:
        warnings.append(
            f"hardware.gen.gpus: {gpus}, but no NVIDIA GPU is visible on this machine "
            f"(backend local): generation jobs run {gpus if gpus > 1 else processes} "
            "process(es), on the CPU unless torch finds another GPU"
        )
    return (gpus if gpus > 1 else processes), warnings


def launcher_command(processes: int, nodes: int = 1) -> str:
    """How a generation job starts its script: one process, or torchrun with P processes.

    On one node torchrun runs standalone; across nodes (P GPUs > gpus_per_node) every node
    runs one torchrun that meets the others through c10d rendezvous on the allocation's
    first node, which the job resolves from SLURM_JOB_NODELIST when it starts. The job
    already runs inside the SLURM executor's own job step, so the inner srun shares its
    resources (--overlap) instead of waiting for them.
    """
    python = shlex.quote(sys.executable)
    if processes <= 1:
        return python
    torchrun = f"{python} -m torch.distributed.run"
    if nodes <= 1:
        return f"{torchrun} --standalone --nproc-per-node {processes}"
    per_node = -(-processes // nodes)
    first_node = '$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'
    return (
        f"srun --overlap --nodes {nodes} --ntasks-per-node 1 {torchrun} --nnodes {nodes} "
        f"--nproc-per-node {per_node} --rdzv-backend c10d "
        f'--rdzv-endpoint "{first_node}:29500" --rdzv-id "$SLURM_JOB_ID"'
    )

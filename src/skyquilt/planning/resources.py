"""Hardware settings as Snakemake resources, and the command line that starts a generation job.

`config["hardware"]` has one section per kind of job; the seed config calls the generation
section `gen`, which this module maps onto the `generate` rule.
"""

import math
import shlex
import sys

from skyquilt.planning.config import parse_memory, parse_slurm_time

# Sections of config["hardware"], one per kind of job, and the rule each one sizes.
HARDWARE_SECTIONS = {
    "gen": "generate",
    "aggregate": "aggregate",
    "decode": "decode",
    "render": "render",
    "evaluate": "evaluate",
    "statistics": "statistics",
}


def hardware_resources(hardware: dict, section_name: str) -> dict:
    """Snakemake resources of the jobs sized by config['hardware'][section_name].

    cpus -> threads/cpus_per_task, ram -> mem_mb, time -> runtime (minutes),
    partition -> slurm_partition, account -> slurm_account, gpus -> gpu (+ gpu_model),
    nodes -> nodes when more GPUs than gpus_per_node are requested.
    """
    section = hardware.get(section_name) or {}
    prefix = f"hardware.{section_name}"
    resources: dict = {"cpus": int(section.get("cpus", 1))}
    if "ram" in section:
        resources["mem_mb"] = parse_memory(section["ram"], f"{prefix}.ram")
    if "time" in section:
        resources["runtime"] = parse_slurm_time(section["time"], f"{prefix}.time")
    gpus = int(section.get("gpus", 0))
    if gpus:
        per_node = int(hardware.get("gpus_per_node", gpus) or gpus)
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
    return resources


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

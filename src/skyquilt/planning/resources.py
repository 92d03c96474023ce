"""Hardware settings as Snakemake resources: `config["hardware"]` -> threads, memory, time, GPUs.

`config["hardware"]` has one section per kind of job (RULE_HARDWARE says which section sizes
which rule); the original config calls the generation section `gen`, and the code names it after
its rule, `generate`. Memory ('60GB') and time limits (SLURM's formats, '6:00:00') are read here,
for every backend. How a SLURM job is started and warned lives in `planning.slurm`.
"""

import glob
import math
import os
import re

from skyquilt.planning.errors import ConfigError
from skyquilt.planning.slurm.launcher import TIME_LIMIT_SIGNAL, time_limit_warning

BACKENDS = ("local", "slurm")
# The section of config["hardware"] that sizes the jobs of each rule with a hardware entry.
RULE_HARDWARE = {
    "generate": "gen",
    "aggregate": "aggregate",
    "verify": "aggregate",
    "decode": "decode",
    "gallery": "render",
    "frames": "render",
    "animation": "render",
    "evaluation": "evaluate",
    "composition_fidelity": "gen",
    "ensemble_statistics": "statistics",
    "latent_ensemble_statistics": "statistics",
}
# The sections of config["hardware"], one per kind of job: gen, aggregate, decode, ...
HARDWARE_SECTIONS = tuple(dict.fromkeys(RULE_HARDWARE.values()))
SLURM_TIME_PATTERN = re.compile(
    r"^(?:(?P<days>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?"
    r"|(?P<a>\d+)(?::(?P<b>\d+)(?::(?P<c>\d+))?)?)$"
)
MEMORY_UNITS = {"": 1e-6, "b": 1e-6, "kb": 1e-3, "mb": 1, "gb": 1e3, "tb": 1e6}
MEMORY_UNITS |= {"kib": 1024 / 1e6, "mib": 1.048576, "gib": 1073.741824, "tib": 1099511.627776}
MEMORY_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_slurm_time(value: str | int, key: str) -> int:
    """A SLURM time limit in minutes (rounded up): M, M:S, H:M:S, D-H, D-H:M, D-H:M:S."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ConfigError(f'{key}: {value!r} is not a SLURM time such as "6:00" or "1-12:00:00"')
    if isinstance(value, int):
        raise ConfigError(
            f"{key}: {value!r} is an integer; YAML reads an unquoted time such as 6:00 as "
            f'minutes*60+seconds, so quote it in SLURM\'s format, e.g. "6:00:00" for six hours'
        )
    match = SLURM_TIME_PATTERN.match(str(value).strip())
    if not match:
        raise ConfigError(
            f"{key}: {value!r} is not a SLURM time; allowed: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S"
        )
    parts = match.groupdict()
    if parts["days"] is not None:
        days, hours = int(parts["days"]), int(parts["dh"])
        minutes, seconds = int(parts["dm"] or 0), int(parts["ds"] or 0)
    else:
        numbers = [int(part) for part in (parts["a"], parts["b"], parts["c"]) if part is not None]
        days = 0
        hours, minutes, seconds = (
            (0, numbers[0], 0)
            if len(numbers) == 1
            else (0, numbers[0], numbers[1])
            if len(numbers) == 2
            else tuple(numbers)
        )
    total = days * 1440 + hours * 60 + minutes + math.ceil(seconds / 60)
    if total <= 0:
        raise ConfigError(f"{key}: {value!r} is zero; a job needs a positive time limit")
    return total


def parse_memory(value: str | int, key: str) -> int:
    """Memory in MB (Snakemake's mem_mb): '60GB' -> 60000, '512MiB' -> 537, 2048 -> 2048."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = MEMORY_PATTERN.match(str(value))
    unit = match.group(2).lower() if match else None
    if not match or unit not in MEMORY_UNITS or float(match.group(1)) <= 0:
        raise ConfigError(f'{key}: {value!r} is not a memory size such as "60GB" or "512MB"')
    return max(1, math.ceil(float(match.group(1)) * MEMORY_UNITS[unit]))


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


def rule_resources(hardware: dict) -> dict[str, dict]:
    """Snakemake resources of every rule of RULE_HARDWARE (`hardware_resources` of its
    section); rules sized by one section share one dict."""
    sections = {section: hardware_resources(hardware, section) for section in HARDWARE_SECTIONS}
    return {rule: sections[section] for rule, section in RULE_HARDWARE.items()}


def section_rule(section: str) -> str:
    """The first rule that config['hardware'][section] sizes (its resources are the section's)."""
    return next(rule for rule, sized_by in RULE_HARDWARE.items() if sized_by == section)


def check_backend(hardware: dict) -> str:
    """hardware.backend, one of BACKENDS."""
    backend = hardware.get("backend", "local")
    if backend not in BACKENDS:
        raise ConfigError(
            f"hardware.backend: {backend!r} is unknown; allowed: {', '.join(BACKENDS)}"
        )
    return backend


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

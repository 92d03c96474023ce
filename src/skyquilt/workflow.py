"""The plan of a run: everything the Snakefile needs, derived once from the config.

`make_plan` turns a validated config into target paths, per-rule resources and the
provenance each member must carry. It reads the model config at most once and makes no
per-job file system calls, so planning stays fast for tens of thousands of members.
"""

import json
import math
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from skyquilt.blankets import blanket_count
from skyquilt.config import (
    ConfigError,
    check_overlap,
    check_unique,
    date_label,
    parse_memory,
    parse_slurm_time,
    parse_start_date,
    parse_trajectory_sizes,
)
from skyquilt.diffusion.options import SAMPLERS, resolve_options
from skyquilt.models.config import (
    PRECISIONS,
    TARGETS,
    ModelConfig,
    ModelDirectory,
    ModelError,
    check_checkpoint_file,
    read_model_config,
)

WILDCARDS = {"size": r"[1-9]\d*", "date": r"\d{4}-\d{2}-\d{2}T\d{2}", "member": r"\d+"}
# Sections of config["hardware"], one per kind of job.
HARDWARE_RULES = ("gen", "aggregate", "decode", "render", "evaluate")


@dataclass(frozen=True)
class Plan:
    """What to generate, where, and with which settings."""

    output_dir: str
    run: str
    model_path: str
    model_target: str
    sizes: list[int]
    date_labels: list[str]
    members: list[int]
    sampler: str
    sampler_options: dict
    steps: int
    precision: str
    overlap: int
    seed: int
    stitch: str
    max_blankets_per_batch: int | None
    processes: int
    model: ModelConfig | None
    resources: dict = field(default_factory=dict)

    @property
    def prior_dir(self) -> str:
        return f"{self.output_dir}/prior/{self.run}"

    def shard(self, size: int | str, label: str, member: int | str) -> str:
        return f"{self.prior_dir}/{size}h/shards/{label}/{member}.zarr"

    def trajectories(self, size: int | str) -> str:
        return f"{self.prior_dir}/{size}h/trajectories.zarr"

    def processes_for(self, size: int) -> int:
        """Processes of a generation job: at most one per blanket of the trajectory."""
        if self.model is None or self.processes <= 1:
            return self.processes
        return min(self.processes, blanket_count(size, self.model.blanket_size, self.overlap))

    def run_provenance(self, size: int) -> dict:
        """The attributes every shard of size `size` must carry (stores.RUN_KEYS)."""
        provenance = {
            "model_path": self.model_path,
            "model_target": self.model_target,
            "sampler": self.sampler,
            "sampler_config": json.dumps(self.sampler_options, sort_keys=True),
            "steps": self.steps,
            "precision": self.precision,
            "overlap": self.overlap,
            "stitch": self.stitch,
            "seed": self.seed,
            "trajectory_size": size,
        }
        return provenance

    def expected_shards(self, size: int) -> dict:
        """What the aggregate checks in every shard of size `size`: the run's provenance
        and the model's latent shape (so that even a wrong first shard is named)."""
        expected = self.run_provenance(size)
        if self.model is not None:
            expected["latent_shape"] = list(self.model.latent_shape)
        return expected

    def settings(self) -> str:
        """The JSON settings shared by every generation job of the run (sizes aside)."""
        settings = {**self.run_provenance(0), "max_blankets_per_batch": self.max_blankets_per_batch}
        del settings["trajectory_size"]
        return json.dumps(settings, sort_keys=True)

    def request(self, size: int | str, label: str, member: int | str) -> str:
        """The JSON settings of one generation job (everything that changes its result)."""
        return member_request(self.settings(), size, label, member)


def member_request(settings: str, size: int | str, label: str, member: int | str) -> str:
    """One member's request: the run's JSON settings plus its size, start date and index."""
    request = {**json.loads(settings), "trajectory_size": int(size)}
    request |= {"start_date": label, "member": int(member)}
    return json.dumps(request, sort_keys=True)


def _section(config: dict, key: str) -> dict:
    value = config.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping, got {value!r}")
    return value


def model_config_for(config: dict, built_by_workflow: dict[str, ModelConfig]) -> ModelConfig | None:
    """The model config at `model_path`, or the one the workflow will build there.

    A missing model directory is an error unless the workflow itself builds it (the demo).
    """
    model_path = str(config["model_path"])
    directory = ModelDirectory(Path(model_path))
    if os.path.isfile(model_path):
        raise ConfigError(
            f"model_path: {model_path!r} is a file; it must be the model directory "
            "<latent_dir>/denoisers/<denoiser>/<lap> that holds config.yaml"
        )
    if directory.config_file.is_file():
        try:
            return read_model_config(directory.config_file)
        except ModelError as error:
            raise ConfigError(f"model_path: {error}") from None
    normalised = os.path.normpath(model_path)
    for built_path, model in built_by_workflow.items():
        if os.path.normpath(built_path) == normalised:
            return model
    raise ConfigError(
        f"model_path: {model_path!r} has no config.yaml; point it at a model directory "
        "<latent_dir>/denoisers/<denoiser>/<lap> (or at the demo model, which the workflow builds)"
    )


def check_checkpoint(config: dict, model_is_built: bool) -> None:
    """The requested best/last checkpoint exists (unless the workflow builds the model)."""
    if model_is_built:
        return
    directory = ModelDirectory(Path(config["model_path"]))
    weights = directory.weights_file(config["model_target"])
    if not weights.is_file():
        raise ConfigError(
            f"model_target: checkpoint {weights} is missing; "
            f"allowed targets are {', '.join(TARGETS)} where their weights exist"
        )
    try:
        check_checkpoint_file(weights)
    except ModelError as error:
        raise ConfigError(f"model_target: {error}") from None


def hardware_resources(hardware: dict, rule: str) -> dict:
    """Snakemake resources of `rule` from config['hardware'][rule].

    cpus -> threads/cpus_per_task, ram -> mem_mb, time -> runtime (minutes),
    partition -> slurm_partition, account -> slurm_account, gpus -> gpu (+ gpu_model),
    nodes -> nodes when more GPUs than gpus_per_node are requested.
    """
    section = hardware.get(rule) or {}
    prefix = f"hardware.{rule}"
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


def make_plan(config: dict, built_by_workflow: dict[str, ModelConfig] | None = None) -> Plan:
    """Check the meaning of a schema-valid config and derive the run's plan."""
    built_by_workflow = built_by_workflow or {}
    model = model_config_for(config, built_by_workflow)
    model_is_built = not ModelDirectory(Path(config["model_path"])).config_file.is_file()
    check_checkpoint(config, model_is_built)

    diffusion = _section(config, "diffusion")
    sampler = diffusion["sampler"]
    name = sampler["type"]
    if name not in SAMPLERS:
        raise ConfigError(
            f"diffusion.sampler.type: {name!r} is unknown; allowed: {', '.join(SAMPLERS)}"
        )
    options = dict(sampler.get("config") or {})
    try:
        resolve_options(name, options)
    except ValueError as error:
        raise ConfigError(f"diffusion.sampler.config: {error}") from None
    steps = diffusion.get("num_steps")
    steps = model.denoising_steps if steps is None else int(steps)

    precision = config.get("precision") or model.precision
    if precision not in PRECISIONS:
        raise ConfigError(f"precision: {precision!r} is unknown; allowed: {', '.join(PRECISIONS)}")

    overlap = int(config["blanket_overlap"])
    check_overlap(overlap, model.blanket_size, f"the model at {config['model_path']}")

    sizes = parse_trajectory_sizes(config["trajectory_sizes"])
    check_unique(config["start_dates"], "start_dates")
    labels = [date_label(parse_start_date(text)) for text in config["start_dates"]]
    samples = int(config["num_samples_per_date"])
    if samples < 1:
        raise ConfigError(f"num_samples_per_date: {samples} must be >= 1")

    generation = _section(config, "generation")
    hardware = _section(config, "hardware")
    gen_gpus = int((hardware.get("gen") or {}).get("gpus", 0))
    processes = gen_gpus if gen_gpus > 1 else int(generation.get("processes", 1))
    return Plan(
        output_dir=str(config.get("output_dir", "results")),
        run=str(config.get("run", "default")),
        model_path=str(config["model_path"]),
        model_target=config["model_target"],
        sizes=sizes,
        date_labels=labels,
        members=list(range(samples)),
        sampler=name,
        sampler_options=options,
        steps=steps,
        precision=precision,
        overlap=overlap,
        seed=int(config.get("seed", 0)),
        stitch=generation.get("stitch", "symmetric"),
        max_blankets_per_batch=generation.get("max_blankets_per_batch"),
        processes=processes,
        model=model,
        resources={rule: hardware_resources(hardware, rule) for rule in HARDWARE_RULES},
    )


def schema_error_line(error: Exception) -> str:
    """One line from Snakemake's schema validation error: the key path and the problem."""
    import jsonschema

    for cause in (*getattr(error, "args", ()), error.__cause__, error.__context__):
        if isinstance(cause, jsonschema.ValidationError):
            key = ".".join(str(part) for part in cause.absolute_path) or "config"
            # Patterns and unknown keys say what is wrong, not what is allowed: add that.
            if cause.validator == "additionalProperties":
                return f"{key}: {cause.message}; allowed: {', '.join(cause.schema['properties'])}"
            if cause.validator == "pattern" and "description" in cause.schema:
                return f"{key}: {cause.instance!r} is not {cause.schema['description']}"
            return f"{key}: {cause.message}"
    return str(error).strip().splitlines()[-1]


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

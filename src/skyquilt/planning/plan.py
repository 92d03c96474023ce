"""The plan of a run: everything the Snakefile needs, derived once from the config.

`make_plan` turns a schema-valid config into the run's settings, its members, target paths
and per-rule resources. It reads the model config at most once and makes no per-job file
system calls, so planning stays fast for tens of thousands of members. Torch-free.
"""

import dataclasses
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from skyquilt.diffusion.options import SAMPLERS, resolve_options
from skyquilt.models.config import PRECISIONS, ModelConfig, ModelDirectory
from skyquilt.planning.dates import check_trajectory_ends, parse_start_dates
from skyquilt.planning.ensemble import check_job_count, check_overlap, parse_trajectory_sizes
from skyquilt.planning.errors import ConfigError
from skyquilt.planning.model import (
    check_weights,
    coarse_model_for,
    code_consent,
    denoiser_fingerprint,
    model_config_for,
    resolve_composition,
)
from skyquilt.planning.paths import check_output_paths, check_path
from skyquilt.planning.resources import check_backend, generation_processes, rule_resources
from skyquilt.sampling.blankets import blanket_count
from skyquilt.sampling.request import MemberRequest, RunSettings

WILDCARDS = {"size": r"[1-9]\d*", "date": r"\d{4}-\d{2}-\d{2}T\d{2}", "member": r"\d+"}


class CheckpointArguments:
    """The checkpoint arguments of scripts/generate.py: directory and intervals.

    Deliberately not a str: Snakemake records only parameters of builtin types and reruns
    a job when they change, and checkpoints never change a member's values, so changing
    `generation.checkpoint` or moving them must not make finished members rerun. In the
    rule's shell command it formats as its command-line arguments, quoted.
    """

    def __init__(self, directory: str, every_steps: int | None, every_minutes: float | None):
        self.directory = directory
        self.every_steps = every_steps
        self.every_minutes = every_minutes

    def __str__(self) -> str:
        def text(value: object) -> str:
            return "none" if value is None else str(value)

        return shlex.join(
            [
                "--checkpoint-dir",
                self.directory,
                "--checkpoint-every-steps",
                text(self.every_steps),
                "--checkpoint-every-minutes",
                text(self.every_minutes),
            ]
        )

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __repr__(self) -> str:
        return f"CheckpointArguments({str(self)!r})"


@dataclass(frozen=True)
class Plan:
    """What to generate, where, and with which settings.

    settings: what every member shares; sizes, date_labels, members: the ensemble, one
    generation job per (size, date label, member); processes: of a generation job (torchrun
    when > 1); model: the model's config; resources: rule -> Snakemake resources.
    """

    output_dir: str
    run: str
    settings: RunSettings
    sizes: list[int]
    date_labels: list[str]
    members: list[int]
    processes: int
    model: ModelConfig
    resources: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    coarse_model: ModelConfig | None = None
    # generation.checkpoint: (every_steps, every_minutes), None for an interval turned off.
    checkpoint_every: tuple[int | None, float | None] = (None, 10.0)

    @property
    def prior_dir(self) -> str:
        """<output_dir>/prior/<run>: every output of the run lies below it."""
        return f"{self.output_dir}/prior/{self.run}"

    def log_path(self, job: str) -> str:
        """The log file of a job: <output_dir>/logs/<run>/<job>.log."""
        return f"{self.output_dir}/logs/{self.run}/{job}.log"

    def shard_path(self, size: int | str, label: str, member: int | str) -> str:
        """The shard of one member: <prior>/<T>h/shards/<date>/<member>.zarr."""
        return f"{self.prior_dir}/{size}h/shards/{label}/{member}.zarr"

    def members_of(
        self, size: int | str, label: str | None = None
    ) -> list[tuple[int | str, str, int]]:
        """(size, date label, member) of every member of trajectory size `size`, or only of
        those from start date `label`: the keys of their shards and decoded members, in the
        order of the aggregate (start date, then member)."""
        labels = self.date_labels if label is None else [label]
        return [(size, date, member) for date in labels for member in self.members]

    @property
    def checkpoint_dir(self) -> str:
        """<output_dir>/checkpoints/<run>: the members' checkpoints, outside <prior>."""
        return f"{self.output_dir}/checkpoints/{self.run}"

    def checkpoint_path(self, size: int | str, label: str, member: int | str) -> str:
        """A member's checkpoint: <output_dir>/checkpoints/<run>/<T>h/<date>/<member>.pt."""
        return member_checkpoint(self.checkpoint_dir, size, label, member)

    @property
    def checkpoint_arguments(self) -> CheckpointArguments:
        """The checkpoint arguments of every generation job (a parameter of rule generate)."""
        return CheckpointArguments(self.checkpoint_dir, *self.checkpoint_every)

    def trajectories_path(self, size: int | str) -> str:
        """The aggregate of one trajectory size: <prior>/<T>h/trajectories.zarr."""
        return f"{self.prior_dir}/{size}h/trajectories.zarr"

    def processes_for(self, size: int) -> int:
        """Processes of a generation job: at most one per blanket of the trajectory."""
        if self.processes <= 1:
            return self.processes
        blankets = blanket_count(size, self.model.blanket_size, self.settings.overlap)
        return min(self.processes, blankets)

    def request(self, size: int | str, label: str, member: int | str) -> MemberRequest:
        """The request of one member of the run."""
        return self.settings.member(size, label, member)


def member_checkpoint(directory: str, size: int | str, label: str, member: int | str) -> str:
    """The checkpoint of one member under `directory`: <directory>/<T>h/<date>/<member>.pt."""
    return f"{directory}/{size}h/{label}/{member}.pt"


def _section(config: dict, key: str) -> dict:
    value = config.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping, got {value!r}")
    return value


def run_settings(config: dict, model: ModelConfig, composition: str) -> RunSettings:
    """The settings every member shares, checked against the model they will use;
    `composition` is generation.composition resolved (`model.resolve_composition`)."""
    diffusion = _section(config, "diffusion")
    name = diffusion["sampler"]["type"]
    if name not in SAMPLERS:
        raise ConfigError(
            f"diffusion.sampler.type: {name!r} is unknown; allowed: {', '.join(SAMPLERS)}"
        )
    options = dict(diffusion["sampler"].get("config") or {})
    try:
        resolved = resolve_options(name, options)
    except ValueError as error:
        raise ConfigError(f"diffusion.sampler.config: {error}") from None
    # An integer option given as a float (order: 2.0) is the integer, in jobs and provenance.
    options = {
        key: resolved[key] if isinstance(resolved[key], int) else value
        for key, value in options.items()
    }
    steps = diffusion.get("num_steps")
    precision = config.get("precision") or model.precision
    if precision not in PRECISIONS:
        raise ConfigError(f"precision: {precision!r} is unknown; allowed: {', '.join(PRECISIONS)}")
    overlap = int(config["blanket_overlap"])
    check_overlap(overlap, model.blanket_size, f"the model at {config['model_path']}")
    generation = _section(config, "generation")
    return RunSettings(
        model_path=str(config["model_path"]),
        model_target=config["model_target"],
        sampler=name,
        sampler_options=options,
        steps=model.denoising_steps if steps is None else int(steps),
        precision=precision,
        overlap=overlap,
        stitch=generation.get("stitch", "symmetric"),
        seed=int(config.get("seed", 0)),
        composition=composition,
        max_blankets_per_batch=generation.get("max_blankets_per_batch"),
        trust_model_code=code_consent(config),
    )


def make_plan(config: dict, built_by_workflow: dict[str, ModelConfig] | None = None) -> Plan:
    """Check the meaning of a schema-valid config and derive the run's plan.

    built_by_workflow: model path -> config of the models the workflow itself builds (the
    demo), which need not exist yet.
    """
    check_path(config["model_path"], "model_path")
    if "dataset" in config:
        check_path(config["dataset"], "dataset")
    output_dir, run = check_output_paths(config)
    model = model_config_for(config, built_by_workflow or {})
    model_is_built = not ModelDirectory(Path(config["model_path"])).config_file.is_file()
    check_weights(config, model_is_built, model)
    composition, warnings = resolve_composition(config, model)
    settings = run_settings(config, model, composition)
    coarse_model = None
    if composition == "two_scale":
        coarse_model = coarse_model_for(config, model, built_by_workflow or {})
    built = {os.path.normpath(path) for path in built_by_workflow or {}}
    if os.path.normpath(settings.model_path) not in built:
        # In the settings, so that a change of the weights' content reruns every member.
        fingerprint = denoiser_fingerprint(
            settings.model_path, settings.model_target, settings.composition
        )
        settings = dataclasses.replace(settings, model_fingerprint=fingerprint)
    sizes = parse_trajectory_sizes(config["trajectory_sizes"])
    labels = parse_start_dates(config["start_dates"])
    check_trajectory_ends(labels, sizes[-1], model.blanket_dt)
    samples = int(config["num_samples_per_date"])
    if samples < 1:
        raise ConfigError(f"num_samples_per_date: {samples} must be >= 1")
    check_job_count(len(sizes), len(labels), samples)
    hardware = _section(config, "hardware")
    check_backend(hardware)
    resources = rule_resources(hardware)
    processes, process_warnings = generation_processes(
        hardware, resources["generate"], int(_section(config, "generation").get("processes", 1))
    )
    return Plan(
        output_dir=output_dir,
        run=run,
        settings=settings,
        sizes=sizes,
        date_labels=labels,
        members=list(range(samples)),
        processes=processes,
        model=model,
        resources=resources,
        warnings=tuple(warnings + process_warnings),
        checkpoint_every=checkpoint_intervals(_section(config, "generation")),
        coarse_model=coarse_model,
    )


def checkpoint_intervals(generation: dict) -> tuple[int | None, float | None]:
    """generation.checkpoint as (every_steps, every_minutes): every 10 minutes by default."""
    checkpoint = _section(generation, "checkpoint")
    steps = checkpoint.get("every_steps")
    minutes = checkpoint.get("every_minutes", 10.0)
    return (None if steps is None else int(steps), None if minutes is None else float(minutes))

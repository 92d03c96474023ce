import json
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

from skyquilt.config import ConfigError
from skyquilt.workflow import WILDCARDS, launcher_command, make_plan, schema_error_line


def fail(message):
    """Stop parsing with one line that names the key and what is allowed."""
    print(f"skyquilt config error: {message}", file=sys.stderr)
    sys.exit(1)


try:
    validate(config, schema="../config/schema.yaml")
except WorkflowError as error:
    fail(schema_error_line(error))

try:
    PLAN = make_plan(
        config, built_by_workflow=globals().get("WORKFLOW_BUILT_MODELS", {})
    )
except ConfigError as error:
    fail(error)


wildcard_constraints:
    size=WILDCARDS["size"],
    date=WILDCARDS["date"],
    member=WILDCARDS["member"],


def get_trajectories():
    """The aggregate of every trajectory size."""
    return [PLAN.trajectories(size) for size in PLAN.sizes]


def get_all_shards():
    """Every member shard of the run: listing them in `all` makes a deleted or failed
    member rerun (with its aggregate) even though the aggregate already exists."""
    return [
        PLAN.shard(size, label, member)
        for size in PLAN.sizes
        for label in PLAN.date_labels
        for member in PLAN.members
    ]


def get_shards(wildcards):
    """Every member shard of one trajectory size."""
    return [
        PLAN.shard(wildcards.size, label, member)
        for label in PLAN.date_labels
        for member in PLAN.members
    ]


def get_model_files():
    """The denoiser files a generation job reads (built by the demo rules if missing)."""
    return {
        "config": f"{PLAN.model_path}/config.yaml",
        "weights": f"{PLAN.model_path}/{PLAN.model_target}.safetensors",
    }


def get_resources(rule):
    """Snakemake resources of `rule` from config['hardware'] (see README, 'hardware')."""
    return {
        key: value
        for key, value in PLAN.resources.get(rule, {}).items()
        if key not in ("cpus", "gpus_per_node")
    }


def get_threads(rule):
    return PLAN.resources.get(rule, {}).get("cpus", 1)


def get_launcher(wildcards):
    """python, or torchrun with one process per GPU (or per `generation.processes`),
    never more processes than the trajectory has blankets."""
    return launcher_command(
        PLAN.processes_for(int(wildcards.size)), PLAN.resources["gen"].get("nodes", 1)
    )


for size in PLAN.sizes:
    if PLAN.processes_for(size) < PLAN.processes:
        logger.warning(
            f"skyquilt: {PLAN.processes} processes requested, but trajectories of {size} "
            f"states have only {PLAN.processes_for(size)} blankets: their generation jobs "
            f"run {PLAN.processes_for(size)} processes"
        )

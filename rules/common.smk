"""The config and the run's plan: every parse-time check, then what the rules are made of.

PLAN (members, paths, resources), PRODUCTS (on-request outputs) and DEMO (the demo's build)
come from one call, skyquilt.planning.workflow.parse_config. Included first; rules/slurm.smk
and rules/inputs.smk follow.
"""

import os

from snakemake.logging import logger

from skyquilt.planning.errors import checked
from skyquilt.planning.fingerprints import PlannedInputs
from skyquilt.planning.plan import WILDCARDS
from skyquilt.planning.products import FIELD_WILDCARD
from skyquilt.planning.slurm.launcher import launcher_command
from skyquilt.planning.workflow import parse_config

# The post-deploy script of envs/skyquilt.yaml installs skyquilt from here into rule
# environments (`--use-conda`); Snakemake creates them from this process.
os.environ.update(SKYQUILT_SOURCE=workflow.basedir)
# Every parse-time check of the config files and the config, in one call
# (skyquilt.planning.workflow); it also fills in the schemas' defaults and makes floats that
# equal an integer (2.0) that integer.
PARSED = checked(parse_config, config, workflow.basedir, workflow.configfiles)
DEMO, PLAN, PRODUCTS = PARSED.demo, PARSED.plan, PARSED.products
# The content fingerprints of the on-request rules' inputs, computed when a rule asks.
INPUTS = PlannedInputs(PRODUCTS, PARSED.built_by_workflow)
if workflow.is_main_process:
    for warning in PLAN.warnings:
        logger.warning(f"skyquilt: {warning}")


wildcard_constraints:
    size=WILDCARDS["size"],
    date=WILDCARDS["date"],
    member=WILDCARDS["member"],
    field=FIELD_WILDCARD,
    chunk=r"\d+",


def get_resources(rule):
    """Snakemake resources of `rule` from its section of config['hardware']
    (skyquilt.planning.resources.RULE_HARDWARE; config/README.md, 'hardware')."""
    return {
        key: value
        for key, value in PLAN.resources.get(rule, {}).items()
        if key not in ("cpus", "gpus_per_node")
    }


def get_threads(rule):
    """The threads of `rule`'s jobs: `cpus` of its section of config['hardware']."""
    return PLAN.resources.get(rule, {}).get("cpus", 1)


def evaluation_report(name, caption, figure):
    """Output `name` of a trajectory size's evaluation, shown in `snakemake --report` with the
    caption report/<caption>.rst under "Evaluation", one subcategory per trajectory size.
    """
    return report(
        PRODUCTS.evaluation_path("{size}", name),
        caption=f"../report/{caption}.rst",
        category="Evaluation",
        subcategory="{size}h trajectories",
        labels={"figure": figure},
    )


def get_launcher():
    """python, or torchrun with one process per GPU (or per `generation.processes`),
    never more processes than a trajectory has blankets: a constant when every size
    runs the same number of processes, else a function of the size wildcard."""
    nodes = PLAN.resources["generate"].get("nodes", 1)
    counts = {PLAN.processes_for(size) for size in PLAN.sizes}
    if len(counts) == 1:
        return launcher_command(counts.pop(), nodes)
    return lambda wildcards: launcher_command(
        PLAN.processes_for(int(wildcards.size)), nodes
    )


for size in PLAN.sizes:
    if PLAN.processes_for(size) < PLAN.processes:
        logger.warning(
            f"skyquilt: {PLAN.processes} processes requested, but trajectories of {size} "
            f"states have only {PLAN.processes_for(size)} blankets: their generation jobs "
            f"run {PLAN.processes_for(size)} processes"
        )

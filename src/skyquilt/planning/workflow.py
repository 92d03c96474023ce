"""The config as the workflow parses it: every parse-time check, in order, in one call.

rules/common.smk calls `parse_config` once, through `skyquilt.planning.errors.checked`, before
any rule is defined, so that `snakemake` (a dry run too) stops with one line naming the key when
the config cannot be used. The checks that depend on what a run asks for (`check_request`) or
where its jobs run (`check_executor`, SLURM paths and the preflight) follow while Snakemake
builds the DAG. Tests call the same functions, in-process.

Torch-free; may import Snakemake's config validation and the planning layer.
"""

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from snakemake.utils import validate

from skyquilt.planning.demo import DemoPlan, make_demo_plan
from skyquilt.planning.files import check_config_files, check_input_limits, check_output_limits
from skyquilt.planning.plan import Plan, make_plan
from skyquilt.planning.products import Products, make_products
from skyquilt.planning.yaml_values import check_no_yaml_dates, normalise_integers

# The JSON schemas of the config, under the workflow's config/ directory: the demo section,
# generation, and the on-request outputs (decode, render, evaluate, statistics).
SCHEMAS = ("schema.demo.yaml", "schema.yaml", "schema.report.yaml")


@dataclass(frozen=True)
class ParsedConfig:
    """What the workflow's rules are made from: the demo's plan, the run's plan, the products."""

    demo: DemoPlan
    plan: Plan
    products: Products

    @property
    def built_by_workflow(self) -> list[str]:
        """The model and dataset paths the workflow builds itself (the demo's), which the
        checks of a request accept before they exist."""
        return [*self.demo.built_models(), str(self.demo.dataset_path)]


def parse_config(
    config: dict, workflow_dir: str | Path, config_files: Iterable[str | os.PathLike] = ()
) -> ParsedConfig:
    """Check `config` and complete it in place with the schemas' defaults.

    In the order the workflow has always checked it: the config files as written (a key given
    twice), YAML mistakes (unquoted dates), the demo section, integral floats (2.0 -> 2), the
    generation schema, the paths against the file system's limits, the plan (dates, sizes, the
    model directory), the on-request schema, the products and the paths they write.

    Arguments:
        config: the config as Snakemake loaded it from `config_files` (and --config), changed
            in place.
        workflow_dir: the workflow's directory, which holds config/<schema>.
        config_files: the config files Snakemake read, read again strictly.

    Returns:
        The demo's plan, the run's plan and its products. Raises ConfigError, or Snakemake's
        WorkflowError for a schema violation, naming the key.
    """
    demo_schema, schema, report_schema = (Path(workflow_dir) / "config" / name for name in SCHEMAS)
    check_config_files(config_files)
    check_no_yaml_dates(config)
    normalise_integers(config, str(demo_schema))
    validate(config, schema=str(demo_schema))
    demo = make_demo_plan(config["demo"])
    normalise_integers(config, str(schema))
    normalise_integers(config, str(report_schema))
    validate(config, schema=str(schema))
    check_input_limits(config)
    plan = make_plan(config, built_by_workflow=demo.built_models())
    validate(config, schema=str(report_schema))
    products = make_products(config, plan)
    check_output_limits(plan, products)
    return ParsedConfig(demo, plan, products)

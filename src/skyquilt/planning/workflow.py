"""The config as the workflow parses it: every parse-time check, in order, in one call.

rules/common.smk calls `parse_config` once, through `skyquilt.planning.errors.checked`, before
any rule is defined, so that `snakemake` (a dry run too) stops with one line naming the key when
the config cannot be used. The checks that depend on what a run asks for (`check_request`) or
where its jobs run (`check_executor`, SLURM paths and the preflight) follow while Snakemake
builds the DAG. Tests call the same functions, in-process.

Torch-free; may import Snakemake's config validation and the planning layer.
"""

from dataclasses import dataclass
from pathlib import Path

from snakemake.utils import validate

from skyquilt.planning.demo import DemoPlan, make_demo_plan
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


def parse_config(config: dict, workflow_dir: str | Path) -> ParsedConfig:
    """Check `config` and complete it in place with the schemas' defaults.

    In the order the workflow has always checked it: YAML mistakes (unquoted dates), the demo
    section, integral floats (2.0 -> 2), the generation schema, the plan (dates, sizes, the model
    directory), the on-request schema and products.

    Arguments:
        config: the config as Snakemake loaded it (its config files and --config), changed in
            place.
        workflow_dir: the workflow's directory, which holds config/<schema>.

    Returns:
        The demo's plan, the run's plan and its products. Raises ConfigError, or Snakemake's
        WorkflowError for a schema violation, naming the key.
    """
    demo_schema, schema, report_schema = (Path(workflow_dir) / "config" / name for name in SCHEMAS)
    check_no_yaml_dates(config)
    normalise_integers(config, str(demo_schema))
    validate(config, schema=str(demo_schema))
    demo = make_demo_plan(config["demo"])
    normalise_integers(config, str(schema))
    normalise_integers(config, str(report_schema))
    validate(config, schema=str(schema))
    plan = make_plan(config, built_by_workflow=demo.built_models())
    validate(config, schema=str(report_schema))
    return ParsedConfig(demo, plan, make_products(config, plan))

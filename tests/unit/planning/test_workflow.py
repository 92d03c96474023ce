"""The config-refusal table, where the refusals happen: each malformed config (or broken model
directory or dataset) of skyquilt_testing.refusals goes through the functions the workflow calls
while it is parsed, in-process, the way rules/common.smk calls them: the config as Snakemake's
own loader reads it, `parse_config` through `checked`, then the request's check and, for a run
on the SLURM executor, the checks of where its jobs run. Each must stop with exit status 1 and
exactly one line naming the key and what is allowed, and write nothing.

Real `snakemake` runs of one case of every kind prove the wiring:
tests/workflow/test_config_errors.py.
"""

import os
from pathlib import Path

import pytest
from skyquilt_testing.refusals import (
    CASES,
    PREFIX,
    SCRIPT,
    SLURM,
    TARGET_PRODUCTS,
    WIRING_CASES,
    Case,
    Models,
    broken_models,
    write_case_config,
)
from skyquilt_testing.workflow import REPO, tiny_config, write_config
from snakemake.common.configfile import load_configfile

from skyquilt.planning.dataset_checks import check_request
from skyquilt.planning.errors import checked
from skyquilt.planning.slurm.executor import check_executor
from skyquilt.planning.slurm.job_paths import check_slurm_paths
from skyquilt.planning.workflow import parse_config


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_model) -> Models:
    return broken_models(tmp_path_factory.mktemp("models"), tiny_model)


def parse_as_the_workflow(case: Case, workdir: Path) -> None:
    """What the workflow checks for a run of `case`'s config in `workdir`, in order."""
    config_file = str(workdir / "config.yaml")
    config = load_configfile(config_file)
    parsed = checked(parse_config, config, REPO, [config_file])
    for target in case.targets:
        checked(check_request, parsed.products, {TARGET_PRODUCTS[target]}, parsed.built_by_workflow)
    if case.options[:2] == SLURM[:2]:
        checked(check_executor, config["hardware"], "slurm")
        checked(check_slurm_paths, config, SCRIPT in case.options)


def refusal(case: Case, models: Models, workdir: Path, capsys, monkeypatch) -> list[str]:
    """The lines the checks print for `case`, run in `workdir` (the run's working directory);
    fails unless they stop with status 1."""
    workdir.mkdir()
    write_case_config(case, models, workdir)
    monkeypatch.chdir(workdir)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        parse_as_the_workflow(case, workdir)
    assert stopped.value.code == 1, case.name
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_there_are_at_least_a_hundred_cases():
    assert len({case.name for case in CASES}) == len(CASES) >= 100
    assert set(WIRING_CASES) <= {case.name for case in CASES}
    assert {target for case in CASES for target in case.targets} <= set(TARGET_PRODUCTS)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_malformed_config_is_refused_at_parse_time_with_one_line(
    case, models, tmp_path, capsys, monkeypatch
):
    workdir = tmp_path / "work"
    lines = refusal(case, models, workdir, capsys, monkeypatch)
    assert len(lines) == 1, f"{case.name}: expected one line, got {lines}"
    [line] = lines
    assert line.startswith(f"{PREFIX}{case.key}"), f"{case.name}: does not name {case.key}: {line}"
    missing = [text for text in case.allowed if text not in line]
    assert not missing, f"{case.name}: does not say {missing}: {line}"
    assert sorted(os.listdir(workdir)) == ["config.yaml"], f"{case.name}: wrote something"


def test_the_tiny_config_itself_is_accepted(models, tmp_path, monkeypatch):
    """The cases break a config that passes every check, so each refusal is its case's own."""
    render = {"fields": [{"variable": "geopotential", "level": 500}]}
    config = tiny_config(models.decodable, dataset=str(models.dataset), render=render)
    write_config(tmp_path, config)
    monkeypatch.chdir(tmp_path)
    parsed = parse_config(load_configfile(str(tmp_path / "config.yaml")), REPO)
    for product in TARGET_PRODUCTS.values():
        check_request(parsed.products, {product}, parsed.built_by_workflow)
    check_slurm_paths(config, pass_command_as_script=False)
    assert parsed.plan.sizes == [12]

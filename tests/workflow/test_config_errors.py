"""Malformed configs stop `snakemake` before any job with one line naming the key and what is
allowed, and write nothing: the wiring, for one case of every kind of refusal
(skyquilt_testing.refusals.WIRING_CASES), each as a real run (`snakemake --cores 1`: were the
check not wired in, the run would generate members) and as a dry run (`snakemake -n`).

Every case of the table is checked where its refusal happens, in-process:
tests/unit/planning/test_workflow.py. The runs start together in a thread pool, because each
`snakemake` start costs seconds; each is still its own test with its own message.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from skyquilt_testing.refusals import (
    CASES,
    PREFIX,
    WIRING_CASES,
    Case,
    Models,
    broken_models,
    write_case_config,
)
from skyquilt_testing.workflow import run_snakemake

DAG_BANNER = "Building DAG of jobs..."
WIRING = [case for case in CASES if case.name in WIRING_CASES]


@dataclass(frozen=True)
class Outcome:
    """What one run of a case did: exit status, stdout + stderr, what it left behind."""

    returncode: int
    output: str
    written: list[str]


def written(workdir: Path, output_dir: object) -> list[str]:
    """What a run left: every path under `workdir` but the config and Snakemake's own
    bookkeeping, and the first things a run makes under `output_dir` (also where that lies
    outside the workdir).

    Snakemake writes its log (.snakemake/log/<time>.snakemake.log) before it reads the
    Snakefile, and sets up its empty bookkeeping directories before it builds the DAG, on
    every run; a file among them (a lock, job metadata, an incomplete marker) is not its own
    log only once it has gone further.
    """
    left = []
    for path in workdir.rglob("*"):
        parts = path.relative_to(workdir).parts
        if parts == ("config.yaml",):
            continue
        if parts[0] == ".snakemake":
            own_log = parts[1:2] == ("log",) and path.name.endswith(".snakemake.log")
            if path.is_dir() or own_log:
                continue
        left.append(str(path))
    if isinstance(output_dir, str) and output_dir.strip():
        target = Path(os.path.normpath(workdir / output_dir))
        # os.path.exists: False, not an error, for a path too long to exist.
        left += [str(target / name) for name in ("prior", "logs") if os.path.exists(target / name)]
    return left


def run_case(case: Case, workdir: Path, models: Models, dry: bool) -> Outcome:
    """`snakemake --cores 1` (or `-n` when `dry`) on the case's config in a new `workdir`."""
    workdir.mkdir()
    config = write_case_config(case, models, workdir)
    mode = ("-n",) if dry else ("--cores", "1")
    result = run_snakemake(workdir, *mode, *case.options, *case.targets, check=False)
    output = result.stdout + result.stderr
    return Outcome(result.returncode, output, written(workdir, config.get("output_dir")))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, tiny_model) -> dict[tuple[str, bool], Outcome]:
    """(case name, dry) -> the outcome of each wiring case's runs, run in parallel."""
    root = tmp_path_factory.mktemp("config_errors")
    models = broken_models(root / "models", tiny_model)
    cases = {case.name: case for case in WIRING}
    runs = [(name, dry) for name in cases for dry in (False, True)]

    def run(name_and_mode: tuple[str, bool]) -> Outcome:
        name, dry = name_and_mode
        workdir = root / f"{name}{'-dry' if dry else ''}"
        return run_case(cases[name], workdir, models, dry)

    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 1) + 1) as pool:
        return dict(zip(runs, pool.map(run, runs), strict=True))


def check_refusal(case: Case, outcome: Outcome) -> None:
    """Non-zero exit, exactly one line `skyquilt config error: <key>: ...` saying what is
    allowed, and nothing written."""
    output = outcome.output
    # Checks of requested outputs run while Snakemake builds the DAG, after its banner.
    after_banner = output.rpartition(DAG_BANNER)[2] if DAG_BANNER in output else output
    lines = [line for line in after_banner.splitlines() if line.strip()]
    assert outcome.returncode != 0, f"{case.name}: snakemake accepted the config:\n{output}"
    assert len(lines) == 1, f"{case.name}: expected one line, got {len(lines)}:\n{output}"
    line = lines[0]
    assert line.startswith(f"{PREFIX}{case.key}"), f"{case.name}: does not name {case.key}: {line}"
    missing = [text for text in case.allowed if text not in line]
    assert not missing, f"{case.name}: does not say {missing}: {line}"
    assert not outcome.written, f"{case.name}: wrote {outcome.written}"


@pytest.mark.parametrize("case", WIRING, ids=[case.name for case in WIRING])
def test_malformed_config_stops_the_run_before_any_job_with_one_line(case, outcomes):
    check_refusal(case, outcomes[case.name, False])


@pytest.mark.parametrize("case", WIRING, ids=[case.name for case in WIRING])
def test_malformed_config_fails_the_dry_run_too(case, outcomes):
    check_refusal(case, outcomes[case.name, True])

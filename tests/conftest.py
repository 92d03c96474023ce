"""Shared fixtures: tiny random-weight models and the live SLURM cluster.

Helpers live in the importable package `skyquilt_testing` (tests/support); tests import them
from there, never from this file.
"""

import os
from pathlib import Path

import pytest
import torch
from skyquilt_testing.models import write_random_model
from skyquilt_testing.slurm import live_slurm, live_slurm_accounting  # noqa: F401

# The in-process tests use tiny models: one thread is faster than two, and much faster when
# the other core is busy with a snakemake run of another test.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A complete model directory with random weights: latent (2, 4, 8), K = 8."""
    return write_random_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def tiny_two_scale_model(tmp_path_factory) -> Path:
    """`tiny_model` with a coarse model for two-scale composition: block means of 2 states,
    windows of 2 to 4 blocks."""
    return write_random_model(tmp_path_factory.mktemp("two_scale_models"), coarse_block=2)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: whatever it checks did not run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if os.environ.get("CI") and skipped and session.exitstatus == pytest.ExitCode.OK:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped, which CI counts as failed")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

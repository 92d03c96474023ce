"""Shared fixtures (tiny random-weight models, the live SLURM cluster) and the order of the run.

Helpers live in the importable package `skyquilt_testing` (tests/support); tests import them
from there, never from this file.
"""

import os
from pathlib import Path

import pytest
import torch
from skyquilt_testing.backbones import plug_in
from skyquilt_testing.models import write_random_model
from skyquilt_testing.slurm import (  # noqa: F401
    live_slurm,
    live_slurm_accounting,
    slurm_cluster,
)

# The in-process tests use tiny models: one thread is faster than two, and much faster when
# the other core is busy with a snakemake run of another test.
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def fingerprint_cache(tmp_path_factory) -> Path:
    """The suite's own cache of content fingerprints (skyquilt.io.fingerprints caches them in
    $XDG_CACHE_HOME/skyquilt), for this process and every snakemake it starts."""
    cache = tmp_path_factory.mktemp("cache")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A complete model directory with random weights: latent (2, 4, 8), K = 8."""
    return write_random_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def faulty_model(tmp_path_factory) -> Path:
    """The tiny model (same weights as `tiny_model`) with the plug-in backbone
    skyquilt_testing.backbones:faulty, which fails, stops or slows a job on cue; a run's config
    must consent to it (skyquilt_testing.backbones.CONSENT)."""
    return plug_in(write_random_model(tmp_path_factory.mktemp("faulty_model")))


@pytest.fixture(scope="session")
def tiny_two_scale_model(tmp_path_factory) -> Path:
    """`tiny_model` with a coarse model for two-scale composition: block means of 2 states,
    windows of 2 to 4 blocks."""
    return write_random_model(tmp_path_factory.mktemp("two_scale_models"), coarse_block=2)


def start_order(item: pytest.Item) -> int:
    """When the test's module is taken up under pytest-xdist (`make test`: --dist loadfile
    --no-loadscope-reorder, a module at a time per worker, in this order).

    The live SLURM tests mostly wait on the cluster, so they start first, beside the CPU-bound
    tests: a module marked `starts_first` (the longest) before the others, and those that need
    the cluster to themselves (accounting storage) last among them, when the others are done
    with it. The end-to-end workflow runs come before the in-process tests, and among those
    the long modules marked `starts_first` before the quick ones, so that the run (`make
    check` too) does not end on one long module.
    """
    first = item.get_closest_marker("starts_first") is not None
    if item.path.parent.name == "slurm":
        if first:
            return 0
        return 2 if "live_slurm_accounting" in item.fixturenames else 1
    if item.path.parent.name == "workflow":
        return 3
    return 4 if first else 5


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the tests by `start_order`, keeping each module's own order."""
    items.sort(key=start_order)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: whatever it checks did not run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if os.environ.get("CI") and skipped and session.exitstatus == pytest.ExitCode.OK:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped, which CI counts as failed")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

"""In CI a skipped test fails the run (tests/conftest.py): a test that skips, for want of a
SLURM cluster or a tmpfs, did not check anything. Outside CI the same skip is only reported."""

import os
import subprocess
import sys

from skyquilt_testing.workflow import REPO

SKIPPING_TEST = "import pytest\n\n\ndef test_skips():\n    pytest.skip('no cluster here')\n"


def pytest_with_the_suite_s_conftest(tmp_path, ci: bool) -> subprocess.CompletedProcess:
    """pytest on one skipping test, with tests/conftest.py loaded as a plugin."""
    (tmp_path / "test_skips.py").write_text(SKIPPING_TEST)
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "tests"), env.get("PYTHONPATH")]))
    if ci:
        env["CI"] = "true"
    command = [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider"]
    command += ["--rootdir", str(tmp_path), str(tmp_path / "test_skips.py")]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)


def test_in_ci_a_skipped_test_fails_the_run(tmp_path):
    result = pytest_with_the_suite_s_conftest(tmp_path, ci=True)
    assert result.returncode == 1, result.stdout[-2000:]
    assert "CI: 1 test(s) skipped, which CI counts as failed" in result.stdout


def test_outside_ci_a_skipped_test_is_reported_only(tmp_path):
    result = pytest_with_the_suite_s_conftest(tmp_path, ci=False)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "1 skipped" in result.stdout

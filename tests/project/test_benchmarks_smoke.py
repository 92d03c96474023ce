"""The benchmarks keep up with the library: every script imports, the batched one runs.

A full `--quick` pass of every benchmark takes about 90 s on 2 cores (fresh processes, shard
writing, snakemake dry runs), too slow for the test suite; `benchmarks/run_all.py --quick`
does it on request.
"""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(path.stem for path in BENCHMARKS.glob("*.py") if path.stem != "common")


def run(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *arguments], cwd=BENCHMARKS, capture_output=True, text=True, timeout=300
    )


def test_every_benchmark_script_imports():
    result = run("-c", "; ".join(f"import {name}" for name in SCRIPTS))
    assert result.returncode == 0, result.stderr[-3000:]


def test_batched_vs_loop_quick_run_prints_its_ratio():
    result = run("batched_vs_loop.py", "--quick")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "batched_vs_loop: per-blanket loop / batched time = " in result.stdout
    assert "smoke run, not judged" in result.stdout

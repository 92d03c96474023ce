"""The benchmarks keep up with the library: every script imports, the batched one and the GPU
measurement run (at tiny sizes, on the CPU).

A full `--quick` pass of every benchmark takes about 90 s on 2 cores (fresh processes, shard
writing, snakemake dry runs), too slow for the test suite; `benchmarks/run_all.py --quick`
does it on request. The GPU measurement's `--quick` pass (about 25 s) is here because the
real one runs only on a GPU machine, rarely and for minutes: it must not be found broken then.
"""

import re
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


def test_gpu_measurement_quick_run_on_the_cpu_measures_every_part_it_can():
    """Every part runs or says why not: on a CPU only GPU memory is not measured; P = 2 runs
    as two gloo processes, and the workflow's shards say device=cpu."""
    result = run("gpu.py", "--device", "cpu", "--quick")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if " (target " in line]
    parts = [line.split(":")[0] for line in lines]
    assert parts == [
        "gpu_memory",
        "gpu_memory",
        "gpu_batched_vs_loop",
        "gpu_batched_vs_loop",
        "gpu_overhead",
        "gpu_precision",
        "gpu_precision",
        "gpu_workflow",
        "gpu_processes",
    ], result.stdout
    not_measured = [line for line in lines if "= not measured (" in line]
    assert all("reason=--device cpu: no GPU memory to measure" in line for line in not_measured), (
        not_measured
    )
    assert len(not_measured) == 2
    workflow = next(line for line in lines if line.startswith("gpu_workflow"))
    assert re.search(r"= 1 \(target = 1 \(2 members, device=cpu\)", workflow), workflow
    assert "devices=['cpu', 'cpu']" in workflow

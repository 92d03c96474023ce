"""Run every benchmark (`make bench`), each in its own process, and print their results.

    python benchmarks/run_all.py [--quick] [--config PATH] [--model-path PATH] [--threads N]
                                 [--only NAME ...]

Each benchmark prints one line per result and appends it to benchmarks/results.csv (not
with --quick, which runs tiny sizes as a smoke test). The exit status is 1 when a benchmark
fails to run; a missed target is reported, not an error.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
# In the order of issue 7's points 2 to 7, then the later ones.
SCRIPTS = (
    "batched_vs_loop",
    "overhead",
    "aggregate_memory",
    "decode_memory",
    "workflow_scale",
    "step_speed",
    "statistics_memory",
    "checkpoint_cost",
    "composition_cost",
)


def main() -> int:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--quick", action="store_true")
    arguments.add_argument("--config", default=None, help="default: config/config.yaml")
    arguments.add_argument("--model-path", default=None)
    arguments.add_argument("--threads", type=int, default=None)
    arguments.add_argument("--only", nargs="+", choices=SCRIPTS, default=SCRIPTS)
    arguments = arguments.parse_args()
    passed = ["--quick"] if arguments.quick else []
    if arguments.config:
        passed += ["--config", arguments.config]
    if arguments.model_path:
        passed += ["--model-path", arguments.model_path]
    if arguments.threads:
        passed += ["--threads", str(arguments.threads)]
    results, failed = [], []
    began = time.perf_counter()
    for name in arguments.only:
        started = time.perf_counter()
        process = subprocess.run(
            [sys.executable, str(BENCHMARKS / f"{name}.py"), *passed],
            capture_output=True,
            text=True,
        )
        print(process.stdout, end="", flush=True)
        print(f"  ({name}: {time.perf_counter() - started:.0f} s)", flush=True)
        if process.returncode != 0:
            failed.append(name)
            print(process.stderr[-3000:], file=sys.stderr)
        results += [line for line in process.stdout.splitlines() if " (target " in line]
    print(f"\n{len(results)} results in {time.perf_counter() - began:.0f} s")
    missed = [line for line in results if "NOT met" in line]
    for line in missed:
        print(f"target missed: {line.split(' [')[0]}")
    if failed:
        print(f"failed to run: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

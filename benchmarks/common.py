"""Shared parts of the benchmarks: arguments, the model under test, timing and the results file.

Every benchmark answers one question of issue 7 with a ratio measured in one run (both sides
interleaved, best of the repeats), because absolute times on a shared machine are noisy.
It prints one line and appends one row to benchmarks/results.csv, the committed record.
"""

import argparse
import csv
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
RESULTS = BENCHMARKS / "results.csv"
OUTPUT = BENCHMARKS / "output"
PYTHON = sys.executable
DEMO_MODEL = REPO / "resources/demo/autoencoders/ae/0/latents/demo/denoisers/denoiser/0"
# The demo's shipped weights (src/skyquilt/demo/pretrained) laid out as a model directory, used
# until `make demo` has built the demo model: the same network, so the same speed.
SHIPPED_MODEL = OUTPUT / "demo-shipped/autoencoders/ae/0/latents/demo/denoisers/denoiser/0"
DEFAULT_CONFIG = REPO / "config/config.yaml"
COLUMNS = (
    "timestamp",
    "benchmark",
    "quantity",
    "ratio",
    "target",
    "met",
    "inputs",
    "numbers",
    "machine",
    "commit",
)


def parser(description: str) -> argparse.ArgumentParser:
    """Arguments every benchmark takes: --config, --model-path, --quick, --threads, --no-record."""
    arguments = argparse.ArgumentParser(description=description)
    arguments.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="the run config whose overlap, sampler, steps and precision are measured "
        "(default: config/config.yaml)",
    )
    arguments.add_argument(
        "--model-path",
        type=Path,
        default=None,
        help="denoiser directory; default: the demo model if built, else the demo's shipped "
        "weights (copied under benchmarks/output)",
    )
    arguments.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests")
    arguments.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: reproducible on a shared machine, see BENCHMARKS.md)",
    )
    arguments.add_argument(
        "--no-record", action="store_true", help="print only; do not append to results.csv"
    )
    return arguments


def model_path(arguments: argparse.Namespace) -> Path:
    """--model-path, else the built demo model, else the demo's shipped weights."""
    if arguments.model_path is not None:
        return arguments.model_path
    if (DEMO_MODEL / "config.yaml").is_file():
        return DEMO_MODEL
    return shipped_demo_model()


def shipped_demo_model() -> Path:
    """The demo's shipped denoiser (config and weights) copied into a model directory, with
    its coarse model in `coarse/`, as the demo installs them."""
    from skyquilt.planning.demo import pretrained_directory
    from skyquilt.planning.demo_settings import COARSE_DIRECTORY

    shipped = Path(pretrained_directory(None))
    parts = {"denoiser": SHIPPED_MODEL, "coarse": SHIPPED_MODEL / COARSE_DIRECTORY}
    for part, directory in parts.items():
        for name in ("config.yaml", "best.safetensors", "last.safetensors"):
            copy, original = directory / name, shipped / part / name
            if not copy.is_file() or copy.read_bytes() != original.read_bytes():
                directory.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(original, copy)
    return SHIPPED_MODEL


def model_label(path: Path) -> str:
    """'demo', 'demo (shipped weights)' or the path."""
    path = Path(path).resolve()
    if path == DEMO_MODEL.resolve():
        return "demo"
    if path == SHIPPED_MODEL.resolve():
        return "demo (shipped weights)"
    return str(path)


def run_config(arguments: argparse.Namespace) -> dict:
    """The config of --config (default config/config.yaml), as Snakemake would read it."""
    return yaml.safe_load(Path(arguments.config).read_text())


def best_of(repeats: int, *functions: Callable[[], object]) -> list[float]:
    """Best wall time in seconds of each function, called in turn `repeats` times.

    Interleaving the sides and keeping the minimum protects a ratio from the bursts of
    load that a shared machine has.
    """
    times = [[] for _ in functions]
    for _ in range(repeats):
        for index, function in enumerate(functions):
            began = time.perf_counter()
            function()
            times[index].append(time.perf_counter() - began)
    return [min(values) for values in times]


def reporting_peak(code: str) -> str:
    """Python `code` with peak_mb() defined: the peak resident memory in MB of the process
    that runs it (VmHWM), for memory benchmarks to print from their fresh processes.

    wait4's ru_maxrss would not do: Linux carries the parent's high-water mark over fork and
    exec into the child's, so a child of a 600 MB benchmark process reports at least 600 MB.
    """
    return (
        "def peak_mb():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1]) / 1024\n"
    ) + code


def run_command(
    command: Sequence[str], cwd: Path | None = None, env: dict | None = None
) -> tuple[float, str]:
    """Run a command to completion: (wall seconds, its output); raise if it fails."""
    began = time.perf_counter()
    result = subprocess.run(
        list(command),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    wall = time.perf_counter() - began
    output = result.stdout.decode(errors="replace")
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, command))} failed ({result.returncode}):\n{output[-4000:]}"
        )
    return wall, output


def machine() -> str:
    """CPU model, cores, memory, GPUs, Python/torch versions and load: where a number was taken."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    import torch

    load = os.getloadavg()[0]
    gpus = ""
    if torch.cuda.is_available():
        gpus = f", {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return (
        f"{model}, {os.cpu_count()} cores, {memory_gb:.0f} GB{gpus}, "
        f"Python {platform.python_version()}, torch {torch.__version__}, load {load:.1f}"
    )


def commit() -> str:
    """Short hash of HEAD, with '+' when the working tree has changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    if not head:  # not a git checkout (a copy of the tree)
        return "unknown"
    return head + ("+" if dirty else "")


def record(
    arguments: argparse.Namespace,
    benchmark: str,
    quantity: str,
    ratio: float | None,
    target: str,
    met: bool | None,
    inputs: dict,
    numbers: dict,
) -> None:
    """Print the one-line result and append it to results.csv (unless --no-record/--quick).

    ratio: None where the quantity could not be measured here (`not_measured`).
    met: None where the quantity has no target (reported for information).
    """
    if ratio is None:
        verdict, shown_ratio = "not measured", "not measured"
    else:
        verdict = "no target" if met is None else ("met" if met else "NOT met")
        verdict = "smoke run, not judged" if arguments.quick else verdict
        shown_ratio = f"{ratio:.3g}"
    shown = ", ".join(f"{key}={value}" for key, value in {**inputs, **numbers}.items())
    print(f"{benchmark}: {quantity} = {shown_ratio} (target {target}: {verdict}) [{shown}]")
    if arguments.no_record or arguments.quick:
        return
    new = not RESULTS.is_file()
    with RESULTS.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(COLUMNS)
        writer.writerow(
            [
                dt.datetime.now().isoformat(timespec="seconds"),
                benchmark,
                quantity,
                "" if ratio is None else f"{ratio:.4g}",
                target,
                verdict,
                json.dumps(inputs, sort_keys=True),
                json.dumps(numbers, sort_keys=True),
                machine(),
                commit(),
            ]
        )


def not_measured(
    arguments: argparse.Namespace,
    benchmark: str,
    quantity: str,
    target: str,
    inputs: dict,
    reason: str,
) -> None:
    """Record that `quantity` was not measured in this run, and why (never a silent skip)."""
    record(arguments, benchmark, quantity, None, target, None, inputs, {"reason": reason})


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def default_plan(arguments: argparse.Namespace, model: Path, size: int, steps: int | None):
    """The plan of --config pointed at `model` (T = size, `steps` if given)."""
    from skyquilt.planning.plan import make_plan

    config = run_config(arguments)
    config.update(model_path=str(model), trajectory_sizes=size)
    if steps is not None:
        config["diffusion"]["num_steps"] = steps
    return make_plan(config)

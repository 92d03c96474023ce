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
DEMO_SCHEMA = REPO / "config/schema.demo.yaml"
# A random-weight stand-in of the demo denoiser's size, used until the demo model is built.
DEMO_LIKE = {"latent_shape": (4, 8, 16), "blanket_size": 8, "hidden_channels": 32, "blocks": 3}
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
    """Arguments every benchmark takes: --model-path, --quick, --threads, --no-record."""
    arguments = argparse.ArgumentParser(description=description)
    arguments.add_argument(
        "--model-path",
        type=Path,
        default=None,
        help="denoiser directory; default: the demo model if built, else a random "
        "demo-sized model under benchmarks/output",
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


def _schema_default(schema: object, key: str):
    """The `default` of property `key` anywhere in a JSON schema, or None."""
    if isinstance(schema, dict):
        found = schema.get("properties", {}).get(key)
        if isinstance(found, dict) and "default" in found:
            return found["default"]
        for value in schema.values():
            default = _schema_default(value, key)
            if default is not None:
                return default
    elif isinstance(schema, list):
        for value in schema:
            default = _schema_default(value, key)
            if default is not None:
                return default
    return None


def demo_like_sizes() -> dict:
    """The demo denoiser's sizes from config/schema.demo.yaml's defaults, where it exists.

    latent_shape = (latent_channels, grid / 2**downsamplings) of the demo autoencoder.
    """
    sizes = dict(DEMO_LIKE)
    if not DEMO_SCHEMA.is_file():
        return sizes
    schema = yaml.safe_load(DEMO_SCHEMA.read_text())
    defaults = {
        key: _schema_default(schema, key)
        for key in ("blanket_size", "hidden_channels", "blocks", "latent_channels", "grid")
    }
    defaults["downsamplings"] = _schema_default(schema, "downsamplings")
    for key in ("blanket_size", "hidden_channels", "blocks"):
        if defaults[key] is not None:
            sizes[key] = defaults[key]
    if None not in (defaults["latent_channels"], defaults["grid"], defaults["downsamplings"]):
        factor = 2 ** defaults["downsamplings"]
        height, width = defaults["grid"]
        sizes["latent_shape"] = (defaults["latent_channels"], height // factor, width // factor)
    return sizes


def model_path(arguments: argparse.Namespace) -> Path:
    """--model-path, else the built demo model, else a random model of the demo's size."""
    if arguments.model_path is not None:
        return arguments.model_path
    if (DEMO_MODEL / "config.yaml").is_file():
        return DEMO_MODEL
    from skyquilt_testing.models import write_random_model

    sizes = demo_like_sizes()
    root = OUTPUT / "model-{}x{}x{}-K{}-h{}-b{}".format(
        *sizes["latent_shape"], sizes["blanket_size"], sizes["hidden_channels"], sizes["blocks"]
    )
    path = root / "autoencoders/ae/0/latents/dump/denoisers/denoiser/0"
    if not (path / "best.safetensors").is_file():
        write_random_model(root, **sizes)
    return path


def model_label(path: Path) -> str:
    """'demo', 'random <sizes>' (the stand-in of the demo's size) or the path."""
    path = Path(path).resolve()
    if path == DEMO_MODEL.resolve():
        return "demo"
    if OUTPUT.resolve() in path.parents:
        stand_in = path.relative_to(OUTPUT.resolve()).parts[0]
        return "random " + stand_in.removeprefix("model-").replace("-", " ")
    return str(path)


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
    """CPU model, cores, memory, Python/torch versions and load: where a number was taken."""
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
    return (
        f"{model}, {os.cpu_count()} cores, {memory_gb:.0f} GB, Python {platform.python_version()}, "
        f"torch {torch.__version__}, load {load:.1f}"
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
    return head + ("+" if dirty else "")


def record(
    arguments: argparse.Namespace,
    benchmark: str,
    quantity: str,
    ratio: float,
    target: str,
    met: bool | None,
    inputs: dict,
    numbers: dict,
) -> None:
    """Print the one-line result and append it to results.csv (unless --no-record/--quick).

    met: None where the quantity has no target (reported for information).
    """
    verdict = "no target" if met is None else ("met" if met else "NOT met")
    if arguments.quick:
        verdict = "smoke run, not judged"
    shown = ", ".join(f"{key}={value}" for key, value in {**inputs, **numbers}.items())
    print(f"{benchmark}: {quantity} = {ratio:.3g} (target {target}: {verdict}) [{shown}]")
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
                f"{ratio:.4g}",
                target,
                verdict,
                json.dumps(inputs, sort_keys=True),
                json.dumps(numbers, sort_keys=True),
                machine(),
                commit(),
            ]
        )


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def default_plan(model: Path, size: int, steps: int | None):
    """The plan of config/config.yaml pointed at `model` (T = size, `steps` if given)."""
    from skyquilt.planning.plan import make_plan

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config.update(model_path=str(model), trajectory_sizes=size)
    if steps is not None:
        config["diffusion"]["num_steps"] = steps
    return make_plan(config)

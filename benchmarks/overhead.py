"""Overhead vs the bare model, and the fixed start-up cost of a generation job.

Issue 7, point 3. Two numbers:

1. Inside one generation (T = 72 and the sampler, steps and precision of --config, by
   default config/config.yaml), the time outside the denoiser's forward pass (sampler
   arithmetic, unfold/fold, time features, building the sampler, writing the shard) as a
   fraction of the total.
   Target <= 5 %. The forward time is ComposedDenoiser.forward_seconds, accumulated around
   every denoiser call.
2. The fixed cost of a generation job before it samples anything: interpreter start,
   imports (`python -c "import skyquilt.jobs.generate"`) and model load, measured in fresh
   processes, against the wall time of a whole job (`scripts/generate.py`). No target:
   it says how many members a job should generate for start-up to stay small.
"""

import time
from dataclasses import replace
from pathlib import Path

import torch
from common import (
    OUTPUT,
    PYTHON,
    REPO,
    best_of,
    default_plan,
    model_label,
    model_path,
    parser,
    record,
    run_command,
)

from skyquilt.io.shards import write_shard
from skyquilt.sampling.generation import generate_member, load_models

TARGET = 0.05
START = "2000-04-03T00"


def in_process_overhead(
    model: Path, plan, size: int, threads: int, repeats: int, device: str = "cpu"
) -> dict:
    """Seconds of one generation on `device` + shard write, and the denoiser's share of them.

    Of `repeats` members, the fastest is kept: the one least disturbed by other load.
    """
    torch.set_num_threads(threads)
    device = torch.device(device)
    denoiser, config, coarse = load_models(plan.settings)  # coarse: when two_scale
    denoiser = denoiser.to(device)
    request = plan.request(size, START, 0)
    # A first, short member warms up the allocator and kernels as a job's first step would.
    warm_up = replace(request, settings=replace(request.settings, steps=1))
    generate_member(denoiser, config, warm_up, device=device, progress=False, coarse=coarse)
    runs = []
    for _ in range(repeats):
        began = time.perf_counter()
        result = generate_member(
            denoiser, config, request, device=device, progress=False, coarse=coarse
        )
        shard = OUTPUT / "overhead/shard.zarr"
        write_shard(shard, result.latent, result.times, request.provenance())
        total = time.perf_counter() - began
        runs.append(
            {
                "total_s": total,
                "denoiser_s": result.denoiser_seconds,
                "write_s": total - result.total_seconds,
                "blankets": result.blanket_count,
            }
        )
    return min(runs, key=lambda run: run["total_s"])


def startup_costs(model: Path, plan, size: int, threads: int, repeats: int) -> dict:
    """Wall seconds of fresh processes: bare interpreter, imports, imports + model load, job."""
    load = (
        "from skyquilt.jobs.generate import run_generation\n"
        "from skyquilt.models.weights import load_denoiser\n"
        f"load_denoiser({str(model)!r}, {plan.settings.model_target!r})"
    )
    job = [
        PYTHON,
        str(REPO / "scripts/generate.py"),
        "--settings", plan.settings.to_json(),
        "--size", str(size), "--date", START, "--member", "0",
        "--output", str(OUTPUT / "overhead/job.zarr"),
        "--threads", str(threads),
    ]  # fmt: skip
    commands = {
        "interpreter_s": [PYTHON, "-c", "pass"],
        "imports_s": [PYTHON, "-c", "import skyquilt.jobs.generate"],
        "startup_s": [PYTHON, "-c", load],
        "job_s": job,
    }
    times = best_of(repeats, *(lambda c=command: run_command(c) for command in commands.values()))
    return dict(zip(commands, times, strict=True))


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--size", type=int, default=72)
    arguments.add_argument("--steps", type=int, default=None, help="default: the config's")
    arguments.add_argument("--repeats", type=int, default=3)
    arguments = arguments.parse_args()
    size = 24 if arguments.quick else arguments.size
    steps = 2 if arguments.quick else arguments.steps
    repeats = 1 if arguments.quick else arguments.repeats
    model = model_path(arguments)
    plan = default_plan(arguments, model, size, steps)
    settings = plan.settings
    inputs = {"T": size, "steps": settings.steps, "sampler": settings.sampler,
              "precision": settings.precision, "threads": arguments.threads,
              "model": model_label(model)}  # fmt: skip

    measured = in_process_overhead(model, plan, size, arguments.threads, repeats)
    fraction = 1 - measured["denoiser_s"] / measured["total_s"]
    record(
        arguments,
        "overhead",
        "time outside the denoiser forward / generation time",
        fraction,
        f"<= {TARGET}",
        fraction <= TARGET,
        {**inputs, "N": measured["blankets"], "repeats": repeats},
        {key: round(measured[key], 3) for key in ("total_s", "denoiser_s", "write_s")},
    )

    costs = startup_costs(model, plan, size, arguments.threads, repeats)
    share = costs["startup_s"] / costs["job_s"]
    sampling = costs["job_s"] - costs["startup_s"]
    record(
        arguments,
        "startup",
        "job start-up (interpreter + imports + model load) / job wall time",
        share,
        "none (informs members per job)",
        None,
        {**inputs, "repeats": repeats},
        {**{key: round(value, 2) for key, value in costs.items()},
         "rest_of_job_s": round(sampling, 2)},
    )  # fmt: skip


if __name__ == "__main__":
    main()

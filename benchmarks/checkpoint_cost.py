"""The cost of checkpointing the sampler state during generation, and the checkpoint size.

Issue "checkpoint and resume", point 5. One member of the demo model (T = 72, the sampler,
steps and precision of --config) generated with a checkpoint every 4 steps against
without checkpoints, interleaved in alternating order, best of the repeats. The ratio judged
is (time without + the time spent writing checkpoints) / time without, the writes timed around
each one (the only work checkpointing adds, besides a comparison per step); the wall-clock
ratio of the two runs is printed too, but on a loaded machine its noise (+-10 %) is larger
than the cost. Every 4 steps is far more often than the default (every 10 minutes), so the
default costs less; the line also gives that cost, one checkpoint's time over 10 minutes.
Target: <= 1.02. A checkpoint's time includes the sha256 of the model's files (first one).
"""

import time
from dataclasses import replace

import torch
from common import OUTPUT, default_plan, model_label, model_path, parser, record

from skyquilt.sampling.checkpoints import Checkpointer, CheckpointPolicy
from skyquilt.sampling.generation import generate_member, load_models

TARGET = 1.02
START = "2000-04-03T00"
EVERY_STEPS = 4
DEFAULT_MINUTES = 10


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--size", type=int, default=72)
    arguments.add_argument("--steps", type=int, default=None)
    arguments.add_argument("--repeats", type=int, default=5)
    arguments = arguments.parse_args()
    size = 24 if arguments.quick else arguments.size
    steps = 8 if arguments.quick else arguments.steps
    repeats = 1 if arguments.quick else arguments.repeats
    model = model_path(arguments)
    plan = default_plan(arguments, model, size, steps)
    torch.set_num_threads(arguments.threads)
    denoiser, config, coarse = load_models(plan.settings)  # coarse: when two_scale
    request = plan.request(size, START, 0)
    path = OUTPUT / "checkpoint_cost/member.pt"
    policy = CheckpointPolicy(every_steps=EVERY_STEPS, every_minutes=None)
    generate_member(
        denoiser, config, replace(request, settings=replace(request.settings, steps=1)),
        progress=False, coarse=coarse,
    )  # fmt: skip

    never, every, checkpoints = [], [], []

    def without() -> None:
        began = time.perf_counter()
        generate_member(denoiser, config, request, progress=False, coarse=coarse)
        never.append(time.perf_counter() - began)

    def with_checkpoints() -> None:
        checkpointer = Checkpointer(path, policy, None, request, torch.device("cpu"))
        began = time.perf_counter()
        generate_member(
            denoiser, config, request, progress=False, checkpointer=checkpointer, coarse=coarse
        )
        every.append(time.perf_counter() - began)
        checkpoints.append((checkpointer.written, checkpointer.seconds))

    for repeat in range(repeats):
        for run in (without, with_checkpoints) if repeat % 2 else (with_checkpoints, without):
            run()
    wall_ratio = min(every) / min(never)
    written, seconds = min(checkpoints, key=lambda pair: pair[1])
    ratio = (min(never) + seconds) / min(never)
    per_checkpoint = seconds / max(written, 1)
    record(
        arguments,
        "checkpoint_cost",
        f"generation time, checkpoint every {EVERY_STEPS} steps / never",
        ratio,
        f"<= {TARGET}",
        ratio <= TARGET,
        {"T": size, "steps": plan.settings.steps, "sampler": plan.settings.sampler,
         "precision": plan.settings.precision, "threads": arguments.threads,
         "model": model_label(model), "repeats": repeats},
        {"never_s": round(min(never), 3), "every_s": round(min(every), 3),
         "wall_ratio": round(wall_ratio, 3), "checkpoint_s": round(seconds, 4),
         "checkpoints": written, "per_checkpoint_s": round(per_checkpoint, 4),
         "default_interval_cost": round(per_checkpoint / (60 * DEFAULT_MINUTES), 6),
         "checkpoint_mb": round(path.stat().st_size / 2**20, 3)},
    )  # fmt: skip
    path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()

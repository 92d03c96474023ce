"""CPU speed of generation: seconds per sampler step of the default demo, variant by variant.

Issue 7, point 7. The default demo member (T = 72, the sampler, overlap and precision of
--config, by default config/config.yaml) is sampled
for a few steps under each variant, interleaved, best of the repeats:

- no_grad:         torch.no_grad(), what azula's samplers already apply to every call;
- inference_mode:  torch.inference_mode(), what generate_member adds (the library path);
- threads=1 / 2:   torch.set_num_threads, which the generation job takes from `threads`;
- compile:         torch.compile(denoiser) (inductor), after its first, compiling call.

Rows: no_grad / inference_mode (before/after of the library's inference mode), threads=2 /
threads=1, and the cost of a whole default member (config steps) with torch.compile,
compile time included, over eager: a compile flag pays only if that is below 1.
"""

import argparse
import time

import numpy as np
import torch
from common import best_of, default_plan, model_label, model_path, parser, record

from skyquilt.diffusion.samplers import build_sampler, init_noise
from skyquilt.diffusion.schedules import build_schedule
from skyquilt.models.calendar import time_features
from skyquilt.models.weights import load_denoiser
from skyquilt.sampling.blankets import padded_size
from skyquilt.sampling.composition import ComposedDenoiser
from skyquilt.sampling.timestamps import trajectory_times

START = np.datetime64("2000-04-03T00", "ns")
CONTEXTS = {
    "no_grad": torch.no_grad,
    "inference_mode": torch.inference_mode,
}


def step_variant(network, model, settings, schedule, features, noise, steps, context, threads):
    """A function that samples `steps` steps of the composed `network` under `context`
    (no_grad or inference_mode) with `threads` torch threads."""
    composed = ComposedDenoiser(
        network,
        features,
        model.blanket_size,
        settings.overlap,
        stitch=settings.stitch,
        max_blankets_per_batch=settings.max_blankets_per_batch,
        precision=settings.precision,
    )

    def sample() -> None:
        torch.set_num_threads(threads)
        sampler = build_sampler(
            settings.sampler, composed, schedule, steps, settings.sampler_options
        )
        with CONTEXTS[context]():
            sampler(noise.clone())

    return sample


def record_ratios(arguments, per_step, inputs, member_steps, compile_seconds) -> None:
    """The no_grad / inference_mode and 2 / 1 threads ratios, and with compile_seconds the
    member time with torch.compile over the eager one."""
    shown = {f"{name}_s_per_step": round(value, 4) for name, value in per_step.items()}
    ratio = per_step["no_grad"] / per_step["inference_mode"]
    record(arguments, "step_speed", "no_grad / inference_mode s per step", ratio,
           "none (before/after)", None, inputs, shown)  # fmt: skip
    ratio = per_step["threads=2"] / per_step["threads=1"]
    record(arguments, "step_speed_threads", "2 threads / 1 thread s per step", ratio,
           "none", None, inputs, shown)  # fmt: skip
    if compile_seconds is not None:
        eager = member_steps * per_step["inference_mode"]
        compiled_s = compile_seconds + member_steps * per_step["compile"]
        record(arguments, "step_speed_compile",
               "member time with torch.compile (compile included) / eager", compiled_s / eager,
               "< 1 to add a compile flag", compiled_s / eager < 1,
               {**inputs, "member_steps": member_steps},
               {**shown, "compile_s": round(compile_seconds, 1)})  # fmt: skip


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--size", type=int, default=72)
    arguments.add_argument("--steps", type=int, default=4, help="steps timed per variant")
    arguments.add_argument("--repeats", type=int, default=5)
    arguments.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    arguments = arguments.parse_args()
    size = 24 if arguments.quick else arguments.size
    steps = 2 if arguments.quick else arguments.steps
    repeats = 1 if arguments.quick else arguments.repeats
    compile_too = arguments.compile and not arguments.quick

    path = model_path(arguments)
    settings = default_plan(arguments, path, size, None).settings
    denoiser, model = load_denoiser(path, settings.model_target)
    schedule = build_schedule(model.noise_schedule, model.sigma_min, model.sigma_max)
    padded = padded_size(size, model.blanket_size, settings.overlap)
    features = time_features(trajectory_times(START, padded, model.blanket_dt))
    torch.manual_seed(0)
    noise = init_noise(schedule, (1, padded, *model.latent_shape))

    def variant(network: torch.nn.Module, context: str, threads: int):
        return step_variant(
            network, model, settings, schedule, features, noise, steps, context, threads
        )

    job_threads = arguments.threads
    variants = {
        "no_grad": variant(denoiser, "no_grad", job_threads),
        "inference_mode": variant(denoiser, "inference_mode", job_threads),
        "threads=1": variant(denoiser, "inference_mode", 1),
        "threads=2": variant(denoiser, "inference_mode", 2),
    }
    compile_seconds = None
    if compile_too:
        compiled = torch.compile(denoiser, dynamic=False)
        began = time.perf_counter()
        variant(compiled, "inference_mode", job_threads)()  # compiles
        compile_seconds = time.perf_counter() - began
        variants["compile"] = variant(compiled, "inference_mode", job_threads)
    for sample in variants.values():
        sample()  # warm-up
    seconds = best_of(repeats, *variants.values())
    per_step = {name: value / steps for name, value in zip(variants, seconds, strict=True)}
    overlap = settings.overlap
    inputs = {"T": size, "N": (padded - model.blanket_size) // (model.blanket_size - overlap) + 1,
              "sampler": settings.sampler, "precision": settings.precision,
              "steps_timed": steps, "repeats": repeats,
              "threads": job_threads, "model": model_label(path)}  # fmt: skip
    record_ratios(arguments, per_step, inputs, settings.steps, compile_seconds)


if __name__ == "__main__":
    main()

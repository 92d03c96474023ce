"""Batched vs per-blanket: the library's composed denoiser against one denoiser call per blanket.

Issue 7, point 2. The same denoiser, sampler, schedule and initial noise sample a trajectory
of T states (T = 72, 240 and 480 with the model's K and the overlap of --config, by default
config/config.yaml: N = 2, 9 and 19 blankets of the demo's K = 48 at O = 24) twice: with
skyquilt's ComposedDenoiser as the config sets it up (all N blankets per step in as few calls
as `generation.max_blankets_per_batch` allows, at the config's precision) and with the same
composed denoiser limited to one blanket per call, the straightforward design that calls the
denoiser once per blanket. Both produce the same trajectory (checked). The ratio is per
sampler step (the config's sampler), so a few steps measure it as well as the full default
count. Target on the 2-core CPU: batched >= 3x faster at N >= 8 blankets.

Where the config's cap splits the blankets, the row also times them in one call
(`one_call_s_per_step`): on a CPU, batches whose activations outgrow the caches run slower
per blanket than chunks of a few MB.
"""

import numpy as np
import torch
from common import best_of, default_plan, model_label, model_path, parser, record
from torch import Tensor

from skyquilt.diffusion.samplers import build_sampler, init_noise
from skyquilt.diffusion.schedules import build_schedule
from skyquilt.models.calendar import time_features
from skyquilt.models.config import ModelConfig
from skyquilt.models.weights import load_denoiser
from skyquilt.sampling.blankets import blanket_count, padded_size
from skyquilt.sampling.composition import ComposedDenoiser
from skyquilt.sampling.request import RunSettings
from skyquilt.sampling.timestamps import trajectory_times

TARGET = 3.0
START = np.datetime64("2000-04-03T00", "ns")


def composed_sides(
    denoiser: torch.nn.Module,
    model: ModelConfig,
    settings: RunSettings,
    features: Tensor,
    caps: dict[str, int | None],
    device: torch.device,
) -> dict[str, ComposedDenoiser]:
    """Side name -> the composed denoiser with that cap of blankets per call, on `device`."""
    return {
        name: ComposedDenoiser(
            denoiser,
            features,
            model.blanket_size,
            settings.overlap,
            stitch=settings.stitch,
            max_blankets_per_batch=cap,
            precision=settings.precision,
        ).to(device)
        for name, cap in caps.items()
    }


def time_batching(
    denoiser: torch.nn.Module,
    model: ModelConfig,
    settings: RunSettings,
    size: int,
    caps: dict[str, int | None],
    steps: int,
    repeats: int,
    device: torch.device,
) -> dict:
    """Seconds per sampler step of a T = `size` trajectory for each cap of blankets per call.

    Arguments:
        denoiser: the blanket denoiser, already on `device`.
        model: its config.
        settings: the run's sampler, options, overlap, stitch and precision.
        size: T.
        caps: side name -> max_blankets_per_batch (1: one call per blanket, None: one call).
        steps: sampler steps timed per run.
        repeats: runs per side, interleaved; the fastest is kept.
        device: where to sample.

    Returns:
        {"padded": T', "count": N, "seconds_per_step": {side: s}, "samples": {side: x0}}, the
        samples (1, T', C, H, W) on the CPU.
    """
    padded = padded_size(size, model.blanket_size, settings.overlap)
    features = time_features(trajectory_times(START, padded, model.blanket_dt))
    schedule = build_schedule(model.noise_schedule, model.sigma_min, model.sigma_max)
    torch.manual_seed(0)
    noise = init_noise(schedule, (1, padded, *model.latent_shape)).to(device)
    sides = composed_sides(denoiser, model, settings, features, caps, device)
    samples = {}

    def run(name: str) -> None:
        torch.manual_seed(1)
        sampler = build_sampler(
            settings.sampler, sides[name], schedule, steps, settings.sampler_options
        )
        with torch.inference_mode():
            samples[name] = sampler(noise.clone()).cpu()

    run(next(iter(sides)))  # warm-up: the first calls pay for allocator and kernel set-up
    seconds = best_of(repeats, *(lambda name=name: run(name) for name in sides))
    return {
        "padded": padded,
        "count": blanket_count(size, model.blanket_size, settings.overlap),
        "seconds_per_step": {
            name: value / steps for name, value in zip(sides, seconds, strict=True)
        },
        "samples": samples,
    }


def sample_difference(samples: dict[str, Tensor], tolerance: float) -> float:
    """Max |batched - loop| of two samples; raise if it exceeds `tolerance` x max |loop|."""
    difference = float((samples["batched"] - samples["loop"]).abs().max())
    scale = max(1.0, float(samples["loop"].abs().max()))
    if not difference <= tolerance * scale:
        raise AssertionError(
            f"batched and per-blanket samples differ by {difference:.2e} (scale {scale:.2e})"
        )
    return difference


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--sizes", type=int, nargs="+", default=[72, 240, 480])
    arguments.add_argument("--steps", type=int, default=4)
    arguments.add_argument("--repeats", type=int, default=3)
    arguments = arguments.parse_args()
    sizes = [72] if arguments.quick else arguments.sizes
    steps = 1 if arguments.quick else arguments.steps
    repeats = 1 if arguments.quick else arguments.repeats
    torch.set_num_threads(arguments.threads)
    path = model_path(arguments)
    settings = default_plan(arguments, path, sizes[0], None).settings
    denoiser, model = load_denoiser(path, settings.model_target)
    cap = settings.max_blankets_per_batch
    for size in sizes:
        count = blanket_count(size, model.blanket_size, settings.overlap)
        caps = {"batched": cap, "loop": 1, **({"one_call": None} if cap and cap < count else {})}
        measured = time_batching(
            denoiser, model, settings, size, caps, steps, repeats, torch.device("cpu")
        )
        per_step = measured["seconds_per_step"]
        difference = sample_difference(measured["samples"], 1e-3)
        ratio = per_step["loop"] / per_step["batched"]
        record(
            arguments,
            "batched_vs_loop",
            "per-blanket loop / batched time",
            ratio,
            f">= {TARGET} at N >= 8",
            ratio >= TARGET if count >= 8 else None,
            {"T": size, "padded_T": measured["padded"], "N": count, "K": model.blanket_size,
             "O": settings.overlap, "max_blankets_per_batch": cap, "steps": steps,
             "sampler": settings.sampler, "precision": settings.precision,
             "threads": arguments.threads, "model": model_label(path)},
            {**{f"{name}_s_per_step": round(value, 4) for name, value in per_step.items()},
             "max_abs_difference": float(f"{difference:.2g}")},
        )  # fmt: skip


if __name__ == "__main__":
    main()

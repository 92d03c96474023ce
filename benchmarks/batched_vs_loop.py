"""Batched vs per-blanket: the library's composed denoiser against a loop over blankets.

Issue 7, point 2. The same denoiser, sampler, schedule and initial noise sample a trajectory
of T states (T = 72 and 240 with the model's K and the default overlap O = 4) twice:
with skyquilt's ComposedDenoiser, which sends all N blankets through the denoiser as one
batch, and with `PerBlanketDenoiser` below, the straightforward design that calls the
denoiser once per blanket. Both produce the same trajectory (checked). The ratio is
per sampler step, so a few steps measure it as well as the full default count.
Target on the 2-core CPU: batched >= 3x faster at N >= 8 blankets.

Where N > --chunk (16), the row also times the batched path with
generation.max_blankets_per_batch = --chunk: on a CPU, batches whose activations outgrow
the caches run slower per blanket than chunks of a few MB.
"""

import numpy as np
import torch
from common import best_of, model_label, model_path, parser, record
from torch import Tensor, nn

from skyquilt.diffusion.samplers import build_sampler, init_noise
from skyquilt.diffusion.schedules import build_schedule
from skyquilt.models.calendar import time_features
from skyquilt.models.weights import load_denoiser
from skyquilt.sampling.blankets import blanket_count, fold, padded_size
from skyquilt.sampling.composition import ComposedDenoiser
from skyquilt.sampling.timestamps import trajectory_times

OVERLAP = 4
TARGET = 3.0
START = np.datetime64("2000-04-03T00", "ns")


class PerBlanketDenoiser(nn.Module):
    """Reference: denoise(x_t: (B, T', C, H, W), sigma) with one denoiser call per blanket.

    What the composed denoiser replaces; kept here, not in the library, as the baseline.
    """

    def __init__(self, denoiser: nn.Module, time_features: Tensor, blanket_size: int, overlap: int):
        super().__init__()
        self.denoiser = denoiser
        self.time_features = time_features
        self.blanket_size = blanket_size
        self.overlap = overlap

    def forward(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        samples, stride = x_t.shape[0], self.blanket_size - self.overlap
        count = (x_t.shape[1] - self.blanket_size) // stride + 1
        noise_levels = torch.as_tensor(sigma, dtype=x_t.dtype).reshape(-1).expand(samples)
        denoised = []
        for index in range(count):
            window = slice(index * stride, index * stride + self.blanket_size)
            features = self.time_features[window].expand(samples, -1, -1)
            denoised.append(self.denoiser(x_t[:, window], noise_levels, features))
        return fold(torch.stack(denoised), self.overlap, dim=1)


def sample(composed: nn.Module, schedule, sampler: str, steps: int, noise: Tensor) -> Tensor:
    """`steps` sampler steps from `noise` (B, T', C, H, W), with the sampler's noise seeded."""
    torch.manual_seed(1)
    with torch.inference_mode():
        return build_sampler(sampler, composed, schedule, steps)(noise.clone())


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--sizes", type=int, nargs="+", default=[72, 240])
    arguments.add_argument("--steps", type=int, default=4)
    arguments.add_argument("--repeats", type=int, default=3)
    arguments.add_argument("--sampler", default="lms")
    arguments.add_argument("--chunk", type=int, default=16)
    arguments = arguments.parse_args()
    sizes = [24] if arguments.quick else arguments.sizes
    steps = 1 if arguments.quick else arguments.steps
    repeats = 1 if arguments.quick else arguments.repeats
    torch.set_num_threads(arguments.threads)
    path = model_path(arguments)
    denoiser, model = load_denoiser(path)
    schedule = build_schedule(model.noise_schedule, model.sigma_min, model.sigma_max)
    for size in sizes:
        padded = padded_size(size, model.blanket_size, OVERLAP)
        count = blanket_count(size, model.blanket_size, OVERLAP)
        features = time_features(trajectory_times(START, padded, model.blanket_dt))
        sides = {
            "batched": ComposedDenoiser(denoiser, features, model.blanket_size, OVERLAP),
            "loop": PerBlanketDenoiser(denoiser, features, model.blanket_size, OVERLAP),
        }
        if count > arguments.chunk:
            sides["chunked"] = ComposedDenoiser(
                denoiser,
                features,
                model.blanket_size,
                OVERLAP,
                max_blankets_per_batch=arguments.chunk,
            )
        torch.manual_seed(0)
        noise = init_noise(schedule, (1, padded, *model.latent_shape))
        samples = {}

        def run(name: str, noise: Tensor = noise, sides: dict = sides, samples: dict = samples):
            samples[name] = sample(sides[name], schedule, arguments.sampler, steps, noise)

        run("batched")  # warm-up: the first calls pay for allocator and kernel set-up
        seconds = dict(
            zip(
                sides,
                best_of(repeats, *(lambda name=name: run(name) for name in sides)),
                strict=True,
            )
        )
        batched_s, loop_s = seconds["batched"], seconds["loop"]
        difference = float((samples["batched"] - samples["loop"]).abs().max())
        if not torch.allclose(samples["batched"], samples["loop"], rtol=1e-3, atol=1e-3):
            raise AssertionError(f"batched and per-blanket samples differ by {difference:.2e}")
        ratio = loop_s / batched_s
        record(
            arguments,
            "batched_vs_loop",
            "per-blanket loop / batched time",
            ratio,
            f">= {TARGET} at N >= 8",
            ratio >= TARGET if count >= 8 else None,
            {"T": size, "padded_T": padded, "N": count, "K": model.blanket_size, "O": OVERLAP,
             "steps": steps, "sampler": arguments.sampler, "threads": arguments.threads,
             "model": model_label(path)},
            {"batched_s_per_step": round(batched_s / steps, 4),
             "loop_s_per_step": round(loop_s / steps, 4),
             **({f"chunked_{arguments.chunk}_s_per_step": round(seconds["chunked"] / steps, 4)}
                if "chunked" in seconds else {}),
             "max_abs_difference": float(f"{difference:.2g}")},
        )  # fmt: skip


if __name__ == "__main__":
    main()

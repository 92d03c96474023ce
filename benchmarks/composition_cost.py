"""What two-scale composition costs: denoiser time per sampler step over symmetric blankets'.

Issue 26, item 5: a trajectory of T = 480 states (the demo's blankets and overlap) is sampled
with the config's sampler over the whole noise schedule (`--steps` steps, so that the share of
steps at which the coarse model runs, sigma >= 0.3, is the run's), composed two_scale and with
symmetric blankets alone, interleaved, best of the repeats. The ratio is the denoiser time
(blankets and coarse windows, `ComposedDenoiser.forward_seconds`) per step, two_scale over
blankets alone; the target is at most 1.5. The demo model built here, else the shipped one, with
its coarse model.
"""

import numpy as np
import torch
from common import model_label, model_path, parser, record, run_config

from skyquilt.diffusion.samplers import build_sampler, init_noise
from skyquilt.diffusion.schedules import build_schedule
from skyquilt.models.calendar import time_features
from skyquilt.sampling.blankets import blanket_count, padded_size
from skyquilt.sampling.composition import ComposedDenoiser
from skyquilt.sampling.generation import load_models
from skyquilt.sampling.request import RunSettings
from skyquilt.sampling.timestamps import trajectory_times

START = np.datetime64("2000-04-03T00", "ns")


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--size", type=int, default=480)
    arguments.add_argument("--steps", type=int, default=16, help="sampler steps per timing")
    arguments.add_argument("--repeats", type=int, default=3)
    arguments = arguments.parse_args()
    size = 96 if arguments.quick else arguments.size
    steps = 4 if arguments.quick else arguments.steps
    repeats = 1 if arguments.quick else arguments.repeats
    torch.set_num_threads(arguments.threads)

    config = run_config(arguments)
    sampler_name = config["diffusion"]["sampler"]["type"]
    overlap = config["blanket_overlap"]
    path = str(model_path(arguments))
    settings = RunSettings(path, "best", sampler_name, {}, steps, "float32", overlap,
                           "symmetric", 0, composition="two_scale")  # fmt: skip
    denoiser, model, coarse = load_models(settings)
    schedule = build_schedule(model.noise_schedule, model.sigma_min, model.sigma_max)
    padded = padded_size(size, model.blanket_size, overlap)
    features = time_features(trajectory_times(START, padded, model.blanket_dt))
    torch.manual_seed(0)
    noise = init_noise(schedule, (1, padded, *model.latent_shape))
    batch = config["generation"]["max_blankets_per_batch"]
    composed = {
        name: ComposedDenoiser(denoiser, features, model.blanket_size, overlap,
                               max_blankets_per_batch=batch, coarse=scale)
        for name, scale in (("blankets", None), ("two_scale", coarse))
    }  # fmt: skip
    seconds = {name: [] for name in composed}
    with torch.inference_mode():
        for _ in range(repeats + 1):  # the first round warms up
            for name, module in composed.items():
                module.forward_seconds = 0.0
                build_sampler(sampler_name, module, schedule, steps)(noise.clone())
                seconds[name].append(module.forward_seconds / steps)
    per_step = {name: min(values[1:] or values) for name, values in seconds.items()}
    ratio = per_step["two_scale"] / per_step["blankets"]
    scale = composed["two_scale"]
    inputs = {"T": size, "N": blanket_count(size, model.blanket_size, overlap),
              "coarse_windows": scale.coarse_count, "coarse_window": scale.coarse_window,
              "block": coarse.block, "sampler": sampler_name, "steps": steps,
              "repeats": repeats, "threads": arguments.threads,
              "model": model_label(path)}  # fmt: skip
    shown = {f"{name}_denoiser_s_per_step": round(value, 4) for name, value in per_step.items()}
    record(arguments, "composition_cost",
           "two_scale / blankets denoiser s per step", ratio, "<= 1.5", ratio <= 1.5,
           inputs, shown)  # fmt: skip


if __name__ == "__main__":
    main()

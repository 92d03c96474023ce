"""Sanity of a trained demo model: do decoded unconditional samples look like the data?

A few blankets are sampled from noise with the best weights, decoded to physical fields and
their per-variable mean and std compared with those of the held-out states. The typical
hour-to-hour change within the sampled blankets, relative to the data's, is reported too
(not part of the pass criterion): it shows how temporally coherent the samples are.
"""

from pathlib import Path

import safetensors.torch
import torch
import xarray as xr
from torch import Tensor

from skyquilt.demo.dataset import area_weights, stack_states
from skyquilt.demo.train_denoiser import blankets, evenly_spaced
from skyquilt.diffusion.samplers import build_sampler, init_noise
from skyquilt.diffusion.schedules import build_schedule
from skyquilt.models.autoencoder import load_autoencoder
from skyquilt.models.calendar import time_features
from skyquilt.models.config import ModelConfig, ModelDirectory
from skyquilt.models.precondition import BlanketDenoiser
from skyquilt.models.weights import load_denoiser
from skyquilt.planning.demo_settings import held_out_mask, window_starts

# A variable passes when its mean and its std are within this fraction of the held-out std.
TOLERANCE = 0.25


def weighted_moments(fields: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Area-weighted mean and std per variable.

    Arguments:
        fields: (N, V, H, W).
        weights: (H,) area weights of mean 1.

    Returns:
        mean, std: (V,) each, float64.
    """
    weights = weights.double()[:, None]
    fields = fields.double()
    mean = (fields * weights).mean(dim=(0, 2, 3))
    variance = ((fields - mean[:, None, None]).square() * weights).mean(dim=(0, 2, 3))
    return mean, variance.sqrt()


def hourly_change(differences: Tensor, weights: Tensor) -> Tensor:
    """Area-weighted rms of hour-to-hour differences (N, V, H, W), weights (H,) -> (V,)."""
    return (differences.double().square() * weights.double()[:, None]).mean(dim=(0, 2, 3)).sqrt()


def _sample_latents(
    denoiser: BlanketDenoiser,
    model: ModelConfig,
    features: Tensor,
    statistics: dict[str, Tensor],
    seed: int,
    sampler: str,
) -> Tensor:
    """Sample unconditional blankets from noise drawn from `seed`, then destandardise them.

    Arguments:
        denoiser: the preconditioned blanket denoiser.
        model: its config (schedule, blanket size, latent shape, denoising steps).
        features: (N, K, 4) calendar features of the N blankets.
        statistics: the latent `mean` and `std`, (C, h, w) each.
        seed: the seed of torch's global generator, set right before the noise is drawn.
        sampler: the sampler's name.

    Returns:
        latents: (N, K, C, h, w), in the autoencoder's latent units.
    """

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        return denoiser(x, sigma.reshape(1).expand(len(x)), features)

    schedule = build_schedule(model.noise_schedule, model.sigma_min, model.sigma_max)
    draw = build_sampler(sampler, denoise, schedule, model.denoising_steps)
    torch.manual_seed(seed)
    noise = init_noise(schedule, (len(features), model.blanket_size, *model.latent_shape))
    return draw(noise) * statistics["std"] + statistics["mean"]


def compare_variables(
    fields: Tensor, reference: Tensor, weights: Tensor, variables: list[str]
) -> dict[str, dict]:
    """Each variable's area-weighted moments and hourly change, sampled vs held out.

    Arguments:
        fields: (N, K, V, H, W) decoded blankets, physical units.
        reference: (T, V, H, W) consecutive held-out states, physical units.
        weights: (H,) area weights of mean 1.
        variables: the V variable names.

    Returns:
        {variable: its report}; a variable is `within_25_percent` when its mean is within
        `TOLERANCE` held-out stds of the held-out mean and its std within `TOLERANCE` of it.
    """
    generated_mean, generated_std = weighted_moments(fields.flatten(0, 1), weights)
    reference_mean, reference_std = weighted_moments(reference, weights)
    generated_change = hourly_change(fields.diff(dim=1).flatten(0, 1), weights)
    reference_change = hourly_change(reference.diff(dim=0), weights)
    report = {}
    for index, name in enumerate(variables):
        mean_error = float((generated_mean[index] - reference_mean[index]) / reference_std[index])
        std_ratio = float(generated_std[index] / reference_std[index])
        report[name] = {
            "generated": {"mean": float(generated_mean[index]), "std": float(generated_std[index])},
            "held_out": {"mean": float(reference_mean[index]), "std": float(reference_std[index])},
            "mean_error_in_std": mean_error,
            "std_ratio": std_ratio,
            "hourly_change_ratio": float(generated_change[index] / reference_change[index]),
            "within_25_percent": abs(mean_error) <= TOLERANCE and abs(std_ratio - 1) <= TOLERANCE,
        }
    return report


@torch.no_grad()
def sanity_check(
    model_path: Path | str,
    dataset_path: Path | str,
    held_out: tuple[str, str],
    blanket_count: int,
    seed: int = 0,
    sampler: str = "lms",
) -> dict:
    """Compare decoded unconditional samples of the best weights with the held-out states.

    A variable passes when its mean is within 25 % of the held-out std of the held-out mean
    (means near zero, like v's, have no meaningful relative error) and its std is within
    25 % of the held-out std; see `compare_variables`.

    Arguments:
        model_path: the denoiser's directory, `<latent_dir>/denoisers/<name>/<lap>`.
        dataset_path: the demo dataset (zarr).
        held_out: first and last held-out date, inclusive.
        blanket_count: how many blankets to sample, evenly spaced over the held-out period.
        seed: seed of the sampler's noise.
        sampler: the sampler's name.

    Returns:
        The report: a description, each variable's comparison and whether all pass.
    """
    denoiser, model = load_denoiser(Path(model_path), "best")
    directory = ModelDirectory(Path(model_path))
    statistics = safetensors.torch.load_file(directory.stats_file)
    autoencoder = load_autoencoder(directory.autoencoder_dir)
    dataset = xr.open_zarr(dataset_path)
    held = held_out_mask(dataset.time.values, held_out)
    reference = torch.from_numpy(stack_states(dataset.isel(time=held), autoencoder.variables))
    weights = area_weights(dataset.latitude.values)

    starts = window_starts(held, model.blanket_size)
    chosen = evenly_spaced(starts, blanket_count)
    features = blankets(time_features(dataset.time.values), chosen, model.blanket_size)
    latents = _sample_latents(denoiser, model, features, statistics, seed, sampler)
    fields = autoencoder.denormalise(
        autoencoder.decode(latents.flatten(0, 1), features.flatten(0, 1))
    )
    by_blanket = fields.unflatten(0, (blanket_count, model.blanket_size))
    variables = compare_variables(by_blanket, reference, weights, autoencoder.variables)
    return {
        "description": (
            f"{blanket_count} unconditional blankets of {model.blanket_size} states "
            f"({sampler}, {model.denoising_steps} steps), decoded, vs {int(held.sum())} held-out "
            "states; area-weighted moments"
        ),
        "variables": variables,
        "within_25_percent": all(entry["within_25_percent"] for entry in variables.values()),
    }

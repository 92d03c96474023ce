"""Sanity of a trained demo model: do its composed trajectories have the weather's statistics?

Trajectories are sampled from noise with the best weights exactly as generation composes them
(blankets of the model, the run's overlap and composition, symmetric stitching, the run's
sampler and steps),
one per start date spread over the held-out period, decoded to physical fields and judged
with the climate diagnostics of the `evaluate` rule (skyquilt.scoring.climate) against the
held-out states: std, hourly change, seams and zonal spectrum, each within its target band.
Each variable's mean is compared too (within a quarter of the held-out std).

What composition alone costs a perfect model with these blankets is reported beside them
(skyquilt.scoring.gaussian, from the autocorrelation of the standardised latents): when the
weather stays correlated much longer than a blanket, no training can remove that part.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import Tensor

from skyquilt.demo.train_denoiser import evenly_spaced, load_standardised_latents
from skyquilt.diffusion.samplers import build_sampler, init_noise
from skyquilt.diffusion.schedules import build_schedule
from skyquilt.models.calendar import time_features
from skyquilt.models.config import ModelConfig, ModelDirectory
from skyquilt.models.decoder import Decoder, load_decoder, load_latent_stats
from skyquilt.models.precondition import BlanketDenoiser
from skyquilt.models.weights import load_denoiser
from skyquilt.planning.demo_settings import held_out_mask, window_starts
from skyquilt.sampling.blankets import padded_size
from skyquilt.sampling.composition import CoarseScale, ComposedDenoiser
from skyquilt.sampling.generation import coarse_scale
from skyquilt.scoring.climate import TARGETS, climate_diagnostics, worst_spectrum_ratios
from skyquilt.scoring.gaussian import (
    autocorrelation,
    composition_penalty,
    covariance_sampler,
    run_rule,
)
from skyquilt.scoring.metrics import seam_pairs
from skyquilt.scoring.probabilistic import latitude_weights

# A variable's mean passes when it is within this fraction of the held-out std.
MEAN_TOLERANCE = 0.25


@dataclass(frozen=True)
class Trajectories:
    """How the sanity check samples: like a run of the workflow with these settings."""

    members: int
    size: int
    overlap: int
    sampler: str
    steps: int | None  # None: the model's validation denoising steps
    seed: int = 0
    composition: str = "blankets"  # the run's generation.composition, resolved


def sample_trajectory(
    denoiser: BlanketDenoiser,
    model: ModelConfig,
    features: Tensor,
    sampling: Trajectories,
    seed: int,
    coarse: CoarseScale | None = None,
) -> Tensor:
    """One composed trajectory from noise drawn with `seed`: features (T', 4) -> (T', C, h, w);
    `coarse`: the coarse scale of two-scale composition, None for blankets alone. The noise of
    stochastic samplers' steps (ddpm, pc) comes from torch's global RNG, seeded with `seed`
    too, as generation seeds it: the same seed gives the same trajectory."""
    schedule = build_schedule(model.noise_schedule, model.sigma_min, model.sigma_max)
    composed = ComposedDenoiser(
        denoiser, features, model.blanket_size, sampling.overlap, coarse=coarse
    )
    steps = sampling.steps or model.denoising_steps
    draw = build_sampler(sampling.sampler, composed, schedule, steps)
    generator = torch.Generator().manual_seed(seed)
    noise = init_noise(schedule, (1, len(features), *model.latent_shape), generator)
    torch.manual_seed(seed)
    return draw(noise)[0]


def start_indices(held: np.ndarray, size: int, members: int) -> Tensor:
    """`members` first indices of windows of `size` states inside the held-out period (T,)."""
    starts = window_starts(held, size)
    if len(starts) == 0:
        raise ValueError(f"the held-out period holds no trajectory of {size} states")
    return evenly_spaced(starts, members)


def as_forecast(fields: Tensor, truth: xr.Dataset, variables: tuple[str, ...]) -> xr.Dataset:
    """Decoded trajectories (M, T, V, H, W) as a dataset shaped like the truth's variables.

    Dims (member, prediction_timedelta, [level,] latitude, longitude); a variable the truth
    holds on a level axis gets that axis too.
    """
    hours = np.arange(fields.shape[1]) * np.timedelta64(1, "h")
    data = {}
    for index, name in enumerate(variables):
        values = xr.DataArray(
            fields[:, :, index].numpy(),
            dims=("member", "prediction_timedelta", "latitude", "longitude"),
            coords={
                "prediction_timedelta": hours,
                "latitude": truth.latitude.values,
                "longitude": truth.longitude.values,
            },
        )
        if "level" in truth[name].dims:
            values = values.expand_dims(level=truth[name].level.values, axis=2)
        data[name] = values
    return xr.Dataset(data)


def mean_errors(forecast: xr.Dataset, truth: xr.Dataset) -> dict[str, float]:
    """Each variable's latitude-weighted mean, sampled minus held out, in held-out stds."""
    weights = latitude_weights(truth.latitude)
    errors = {}
    for name in forecast.data_vars:
        truth_mean = float((truth[name] * weights).mean())
        truth_std = float(np.sqrt(((truth[name] - truth_mean) ** 2 * weights).mean()))
        errors[str(name)] = (float((forecast[name] * weights).mean()) - truth_mean) / truth_std
    return errors


def perfect_model_penalty(
    directory: ModelDirectory, model: ModelConfig, sampling: Trajectories, held: np.ndarray
) -> dict[str, float]:
    """What composition costs a perfect model of these latents (skyquilt.scoring.gaussian).

    The autocorrelation of the standardised training latents, composed vs single windows
    with the model's blankets and schedule and the run's overlap, composition, steps and
    sampler (lms where the run's has no exact covariance, see covariance_sampler).
    """
    latents, _ = load_standardised_latents(directory.latent_dir)
    padded = padded_size(sampling.size, model.blanket_size, sampling.overlap)
    correlation = autocorrelation(latents[torch.from_numpy(~held)].numpy(), padded)
    schedule = build_schedule(model.noise_schedule, model.sigma_min, model.sigma_max)
    steps = sampling.steps or model.denoising_steps
    sampler = covariance_sampler(sampling.sampler)
    rule = run_rule(sampling.composition, "symmetric", directory.model_path, model, padded)
    penalty = composition_penalty(
        correlation, sampling.size, model.blanket_size, sampling.overlap, schedule, steps,
        sampler=sampler, rule=rule,
    )  # fmt: skip
    return {
        "sampler": sampler,
        "std_ratio": penalty.std_ratio,
        "hourly_change_ratio": penalty.hourly_change_ratio,
        "latent_lag1_correlation": float(correlation[1]),
    }


def judged_rows(table: pd.DataFrame, errors: dict[str, float]) -> pd.DataFrame:
    """One row per (variable, level, metric) judged: value, band and whether it passes.

    The climate diagnostics' std, hourly-change and seam ratios, the worst judged spectrum
    ratio (with its wavenumber), and the mean error in held-out stds.
    """
    ratios = table[table["metric"].isin(["std_ratio", "hourly_change_ratio", "seam_ratio"])]
    ratios = ratios[ratios["judged"]]
    worst = worst_spectrum_ratios(table).assign(metric="spectrum_ratio")
    rows = pd.concat([ratios, worst], ignore_index=True)
    rows = rows.rename(columns={"ratio": "value"})[
        ["variable", "level", "metric", "wavenumber", "value"]
    ]
    rows["low"] = rows["metric"].map(lambda metric: TARGETS[metric][0])
    rows["high"] = rows["metric"].map(lambda metric: TARGETS[metric][1])
    means = pd.DataFrame(
        {
            "variable": list(errors),
            "metric": "mean_error_in_std",
            "value": list(errors.values()),
            "low": -MEAN_TOLERANCE,
            "high": MEAN_TOLERANCE,
        }
    )
    rows = pd.concat([rows, means], ignore_index=True)
    rows["passed"] = (rows["value"] >= rows["low"]) & (rows["value"] <= rows["high"])
    return rows.sort_values(["variable", "metric"], ignore_index=True)


def miss_lines(rows: pd.DataFrame) -> list[str]:
    """One line per failed row: `<variable> <metric> <value> outside [low, high]`."""
    lines = []
    for row in rows[~rows["passed"]].itertuples():
        where = f" at wavenumber {int(row.wavenumber)}" if row.metric == "spectrum_ratio" else ""
        lines.append(
            f"{row.variable} {row.metric} {row.value:.3g}{where} outside [{row.low}, {row.high}]"
        )
    return lines


@torch.no_grad()
def decoded_trajectories(
    denoiser: BlanketDenoiser,
    model: ModelConfig,
    decoder: Decoder,
    stats_file: Path,
    times: np.ndarray,
    held: np.ndarray,
    truth: xr.Dataset,
    sampling: Trajectories,
    coarse: CoarseScale | None = None,
) -> xr.Dataset:
    """`sampling.members` composed trajectories from start times spread over the held-out
    states (`held`: (T,) bool over the dataset's `times`), decoded beside `truth`, in the
    layout of `as_forecast`; `coarse`: the coarse scale of two-scale composition."""
    latent_mean, latent_std = load_latent_stats(stats_file)
    padded = padded_size(sampling.size, model.blanket_size, sampling.overlap)
    hours = np.arange(padded) * np.timedelta64(1, "h")
    starts = start_indices(held, sampling.size, sampling.members)
    latents, features = [], []
    for member, start in enumerate(starts.tolist()):
        member_features = time_features(times[start] + hours)
        trajectory = sample_trajectory(
            denoiser, model, member_features, sampling, sampling.seed + member, coarse
        )
        latents.append(trajectory[: sampling.size])
        features.append(member_features[: sampling.size])
    latents = torch.stack(latents) * latent_std + latent_mean
    fields = decoder.decode(latents.flatten(0, 1), torch.stack(features).flatten(0, 1))
    return as_forecast(fields.unflatten(0, latents.shape[:2]), truth, decoder.variables)


@torch.no_grad()
def sanity_check(
    model_path: Path | str,
    dataset_path: Path | str,
    held_out: tuple[str, str],
    sampling: Trajectories,
) -> tuple[dict, pd.DataFrame]:
    """Judge decoded composed trajectories of the best weights against the held-out states.

    Arguments:
        model_path: the denoiser's directory, `<latent_dir>/denoisers/<name>/<lap>`.
        dataset_path: the demo dataset (zarr).
        held_out: first and last held-out date, inclusive.
        sampling: how many trajectories, of which size, and how they are composed.

    Returns:
        The report (a description, the judged rows by variable, the misses, whether all pass,
        and the composition penalty of a perfect model) and the judged rows as a table.
    """
    denoiser, model = load_denoiser(Path(model_path), "best")
    two_scale = sampling.composition == "two_scale"
    coarse = coarse_scale(Path(model_path), model) if two_scale else None
    directory = ModelDirectory(Path(model_path))
    decoder = load_decoder(directory.autoencoder_dir)
    dataset = xr.open_zarr(dataset_path)
    held = held_out_mask(dataset.time.values, held_out)
    truth = dataset.isel(time=held)[list(decoder.variables)].load()
    forecast = decoded_trajectories(
        denoiser, model, decoder, directory.stats_file, dataset.time.values, held, truth, sampling,
        coarse,
    )  # fmt: skip

    seams = seam_pairs(sampling.size, model.blanket_size, sampling.overlap)
    rows = judged_rows(climate_diagnostics(forecast, truth, seams), mean_errors(forecast, truth))
    missed = miss_lines(rows)
    report = {
        "description": (
            f"{sampling.members} composed trajectories of {sampling.size} states (blankets of "
            f"{model.blanket_size}, overlap {sampling.overlap}, symmetric stitching, "
            f"composition {sampling.composition}, "
            f"{sampling.sampler}, {sampling.steps or model.denoising_steps} steps), decoded, vs "
            f"{int(held.sum())} held-out states; climate diagnostics of the evaluate rule"
        ),
        "variables": {
            str(name): {row.metric: row.value for row in group.itertuples()}
            for name, group in rows.groupby("variable")
        },
        "misses": missed,
        "passed": not missed,
        "composition_penalty_of_a_perfect_model": perfect_model_penalty(
            directory, model, sampling, held
        ),
    }
    return report, rows

"""The composition-fidelity job: does composing blankets cost the model quality?

The same model is sampled as single blankets (T = K, no composition) at the start times of the
blankets of every composed member of one trajectory size, with the run's sampler, steps and
precision, through the generation code the members use (`sampling.generation.generate_member`),
each from its own seed derived from the run's (`seeding.stream_seed`, stream SINGLE_STREAM).
Each single blanket is decoded at once and added to running sums (`scoring.climate.FieldSums`),
so memory stays that of one blanket. Their climate diagnostics against the same truth as the
composed members' (the evaluation's climate.csv) give, per variable, composed / single of the
hourly-change and std ratios (`scoring.climate.fidelity_table`).
"""

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from tqdm import tqdm

from skyquilt.diffusion.schedules import build_schedule
from skyquilt.io.atomic import atomic_file
from skyquilt.io.forecasts import decoded_template, variable_blocks
from skyquilt.jobs.decode import decode_states, open_decoding
from skyquilt.jobs.evaluation import climate_period, climate_reference, trajectory_span
from skyquilt.jobs.render import open_truth
from skyquilt.models.config import ModelConfig
from skyquilt.models.weights import load_denoiser
from skyquilt.plotting.climate import plot_fidelity
from skyquilt.sampling.blankets import blanket_count, padded_size
from skyquilt.sampling.generation import generate_member
from skyquilt.sampling.request import MemberRequest, RunSettings
from skyquilt.sampling.seeding import stream_seed
from skyquilt.scoring.climate import (
    FIDELITY_COLUMNS,
    FIDELITY_TARGETS,
    FieldSums,
    diagnostics_table,
    fidelity_table,
    misses,
    state_lag,
    summarise,
)
from skyquilt.scoring.gaussian import (
    Penalty,
    autocorrelation,
    composition_penalty,
    covariance_sampler,
    run_rule,
)

log = logging.getLogger("skyquilt")

SINGLE_STREAM = "single-blankets"
# Lags (hours) at which the perfect-model rows compare the composed correlation with the truth's.
PERFECT_MODEL_LAGS = (24, 48, 96)


def single_blanket_requests(
    settings: RunSettings, model: ModelConfig, size: int, labels: list[str], members: list[int]
) -> list[MemberRequest]:
    """One single-blanket request (T = K) per blanket of every composed member of `size`.

    Blanket j of the member from start date s starts at s + j (K - O) dt. The requests share
    the run's settings but a seed derived for SINGLE_STREAM and no coarse scale (a single
    blanket is the model alone); their member index numbers the
    composed members in order, so that blankets of different start dates that begin at the
    same hour still draw different noise.
    """
    singles = dataclasses.replace(
        settings, seed=stream_seed(settings.seed, SINGLE_STREAM), composition="blankets"
    )
    stride = np.timedelta64((model.blanket_size - settings.overlap) * model.blanket_dt, "h")
    count = blanket_count(size, model.blanket_size, settings.overlap)
    composed = [label for label in labels for _ in members]  # one per composed member
    requests = []
    for index, label in enumerate(composed):
        for blanket in range(count):
            start = np.datetime64(label, "h") + blanket * stride
            requests.append(singles.member(model.blanket_size, str(start), index))
    return requests


def _as_forecast(template: xr.Dataset, fields: np.ndarray, channels: list) -> xr.Dataset:
    """Decoded fields (K, V, H, W) as one member of the template's layout, in memory."""
    values = variable_blocks(fields, channels, template)
    data = {
        name: (template[name].dims, values[name][None, None], template[name].attrs)
        for name in template.data_vars
    }
    return xr.Dataset(data, template.coords)


def sample_single_blankets(
    denoiser: torch.nn.Module,
    model: ModelConfig,
    requests: list[MemberRequest],
    dataset: xr.Dataset,
    device: torch.device,
) -> FieldSums:
    """Sample, decode and sum the single blankets of `requests`, one at a time.

    denoiser, model: the run's denoiser (on `device`) and its config; dataset: the truth's,
    whose grid, levels and units the decoded fields take.
    """
    decoder, stats, channels = open_decoding(requests[0].settings.model_path, dataset, device)
    sums = None
    for request in tqdm(requests, unit="blanket", desc="single blankets"):
        result = generate_member(denoiser, model, request, device=device, progress=False)
        fields = decode_states(result.latent, result.times, decoder, stats)
        template = decoded_template(
            xr.Dataset(coords={"time": result.times}), dataset, channels, len(result.times)
        )
        summed = summarise(_as_forecast(template, fields, channels))
        sums = summed if sums is None else sums + summed
    return sums


def single_diagnostics(
    sums: FieldSums, model: ModelConfig, truth: xr.Dataset, period: tuple[str, str]
) -> pd.DataFrame:
    """Climate diagnostics (climate.CLIMATE_COLUMNS) of the summed single blankets against
    the truth of `period`; blankets have no seams."""
    reference = climate_reference(truth, sums.weighted, period)
    lag = state_lag(np.timedelta64(model.blanket_dt, "h"), reference)
    return diagnostics_table(sums, summarise(reference, lag), np.array([], dtype=int))


def penalty_rows(penalty: Penalty, blanket_dt: int) -> list[tuple[str, float, float, float]]:
    """(metric, composed, single, ratio) of a perfect model's penalty: the std and hourly
    change, composed / single; the lag correlations of PERFECT_MODEL_LAGS hours, composed
    and the truth's (in the `single` column); the work per step over symmetric blankets'."""
    rows = [
        ("std", penalty.composed.std, penalty.single.std, penalty.std_ratio),
        ("hourly_change", penalty.composed.change, penalty.single.change,
         penalty.hourly_change_ratio),
    ]  # fmt: skip
    for lag, (composed, truth) in penalty.lags.items():
        rows.append((f"lag_{lag * blanket_dt}h_correlation", composed, truth, composed / truth))
    rows.append(("work_per_step", penalty.work, 1.0, penalty.work))
    return rows


def perfect_model_rows(
    reference: xr.Dataset, model: ModelConfig, settings: RunSettings, size: int
) -> pd.DataFrame:
    """What composition costs a perfect model whose states decorrelate like the truth's.

    Per variable (and level): the autocorrelation of the truth of the climate period
    (`reference`, (time, [level,] latitude, longitude), states `blanket_dt` apart), and the
    composed / single std and hourly change of its exact window denoiser with the run's
    blankets, overlap, composition, steps and sampler (scoring.gaussian.composition_penalty;
    lms for samplers it cannot compute exactly, see covariance_sampler), the composed
    trajectories' correlations at lags of 24, 48 and 96 hours against the truth's, and the
    states scored per step over symmetric blankets'. Rows of climate.FIDELITY_COLUMNS with
    metrics perfect_model_<std_ratio, hourly_change_ratio, lag_<L>h_correlation_ratio,
    work_per_step_ratio>; none when the period is shorter than the padded trajectory.
    """
    padded = padded_size(size, model.blanket_size, settings.overlap)
    schedule = build_schedule(model.noise_schedule, model.sigma_min, model.sigma_max)
    sampler = covariance_sampler(settings.sampler)
    rule = run_rule(settings.composition, settings.stitch, Path(settings.model_path), model, padded)
    lags = tuple(hours // model.blanket_dt for hours in PERFECT_MODEL_LAGS)
    log.info(
        "perfect-model rows: the exact covariance of %s, %d steps, %s",
        sampler, settings.steps, rule.label,
    )  # fmt: skip
    rows = []
    for name, values in reference.data_vars.items():
        levels = values.level.values.tolist() if "level" in values.dims else [None]
        for level in levels:
            series = values if level is None else values.sel(level=level)
            series = series.isel(time=slice(None, None, model.blanket_dt)).values
            if len(series) <= padded:
                continue
            penalty = composition_penalty(
                autocorrelation(series, padded), size, model.blanket_size,
                settings.overlap, schedule, settings.steps, sampler=sampler, rule=rule,
                lags=lags,
            )  # fmt: skip
            for metric, composed, single, ratio in penalty_rows(penalty, model.blanket_dt):
                rows.append(
                    {
                        "variable": name,
                        "level": level,
                        "metric": f"perfect_model_{metric}_ratio",
                        "composed": composed,
                        "single": single,
                        "ratio": ratio,
                    }
                )
    return pd.DataFrame(rows, columns=FIDELITY_COLUMNS).astype({"level": "Int64"})


def run_fidelity(
    climate_csv: str,
    dataset: str,
    settings: RunSettings,
    size: int,
    labels: list[str],
    members: list[int],
    configured_period: tuple[str, str] | None,
    outputs: dict[str, str],
    device: torch.device,
) -> pd.DataFrame:
    """Sample the single blankets of the composed members of `size`, compare both with the
    same truth and write fidelity.csv (climate.FIDELITY_COLUMNS) and its plot.

    climate_csv: the evaluation's climate diagnostics of the composed members; outputs: paths
    of fidelity_csv and fidelity_png. The truth period is the evaluation's (see
    jobs.evaluation.climate_period).
    """
    truth = open_truth(dataset)
    denoiser, model = load_denoiser(
        Path(settings.model_path), settings.model_target, settings.trust_model_code
    )
    dt = np.timedelta64(model.blanket_dt, "h")
    starts = np.array([np.datetime64(label, "h") for label in labels])
    period = climate_period(truth, configured_period, trajectory_span(starts, size, dt))
    requests = single_blanket_requests(settings, model, size, labels, members)
    log.info(
        "%d single blankets (K=%d) at the blanket starts of %d composed members of %d states; "
        "truth of %s to %s",
        len(requests), model.blanket_size, len(labels) * len(members), size, *period,
    )  # fmt: skip
    sums = sample_single_blankets(denoiser.to(device), model, requests, truth, device)
    single = single_diagnostics(sums, model, truth, period)
    composed = pd.read_csv(climate_csv).astype({"level": "Int64"})
    reference = climate_reference(truth, sums.weighted, period).load()
    table = pd.concat(
        [fidelity_table(composed, single), perfect_model_rows(reference, model, settings, size)],
        ignore_index=True,
    )
    with atomic_file(outputs["fidelity_csv"]) as temporary:
        table.to_csv(temporary, index=False)
    plot_fidelity(table, outputs["fidelity_png"])
    log_fidelity(table)
    return table


def log_fidelity(table: pd.DataFrame) -> None:
    """One line per row, and a warning per ratio outside climate.FIDELITY_TARGETS."""
    for row in table.itertuples():
        log.info(
            "%s %s %s: composed %.3f, single %.3f, composed / single %.3f",
            row.variable, row.level, row.metric, row.composed, row.single, row.ratio,
        )  # fmt: skip
    for row in misses(table, FIDELITY_TARGETS).itertuples():
        low, high = FIDELITY_TARGETS[row.metric]
        log.warning(
            "%s %s: composed / single %s is %.3f, outside [%g, %g]: composition changes the "
            "model's statistics",
            row.variable, row.level, row.metric, row.ratio, low, high,
        )  # fmt: skip

"""The work of the evaluation job: scores, spectra and seam continuity of one trajectory size.

The samples are compared with the dataset's truth, persistence, climatology and a climatology
ensemble of the same size (drawn with the run's seed), and the
results written as tables and plots.

The climate diagnostics (skyquilt.scoring.climate: std, hourly-change, seam and spectrum ratios)
compare the samples with the truth of the climate period: `evaluate.climate_period`, else the
dataset's held-out period (attributes `held_out_start`, `held_out_end`), else the span of the
evaluated trajectories.

The decoded members are opened lazily as one ensemble; skyquilt.scoring.metrics loads lead times in
bounded blocks, so memory does not grow with the ensemble.
"""

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from skyquilt.io.atomic import atomic_directory, atomic_file
from skyquilt.io.fingerprints import INPUTS, dataset_record
from skyquilt.io.shards import ZARR_FORMAT
from skyquilt.jobs.render import open_ensemble, open_truth
from skyquilt.planning.products import Field
from skyquilt.plotting import climate as climate_plots
from skyquilt.plotting import scores as score_plots
from skyquilt.scoring.baselines import CLIMATOLOGY_WINDOW_DAYS
from skyquilt.scoring.climate import (
    climate_diagnostics,
    misses,
    summary_scores,
    worst_spectrum_ratios,
)
from skyquilt.scoring.metrics import Evaluation, evaluate, seam_pairs, table_to_dataset

log = logging.getLogger("skyquilt")


def default_climatology_period(truth: xr.Dataset, init_times: np.ndarray) -> tuple[str, str]:
    """The default climatology period: the dataset's hours before any start date.

    From the dataset's first time to the hour before the earliest start date, or to the hour
    before the dataset's held-out period (attribute `held_out_start`) if that comes first.
    """
    end = np.min(init_times) - np.timedelta64(1, "h")
    if "held_out_start" in truth.attrs:
        held_out = np.datetime64(truth.attrs["held_out_start"], "ns") - np.timedelta64(1, "h")
        end = min(end, held_out)
    first = truth.time.values[0]
    if end < first:
        raise ValueError(
            "evaluate.climatology_period: the dataset has no time before the start dates; "
            "give the period explicitly"
        )
    return str(np.datetime64(first, "h")), str(np.datetime64(end, "h"))


def climate_period(
    truth: xr.Dataset, configured: tuple[str, str] | None, span: tuple[str, str]
) -> tuple[str, str]:
    """The period the climate diagnostics compare with: `configured`, else the dataset's
    held-out period (attributes held_out_start, held_out_end), else `span` (the evaluated
    trajectories' first and last valid hour)."""
    if configured:
        return tuple(configured)
    if "held_out_start" in truth.attrs and "held_out_end" in truth.attrs:
        return str(truth.attrs["held_out_start"]), str(truth.attrs["held_out_end"])
    return span


def trajectory_span(starts: np.ndarray, size: int, dt: np.timedelta64) -> tuple[str, str]:
    """First and last valid hour ('YYYY-MM-DDTHH') of trajectories of `size` states from
    `starts` (datetime64), states `dt` apart."""
    first, last = np.min(starts), np.max(starts) + (size - 1) * dt
    return str(np.datetime64(first, "h")), str(np.datetime64(last, "h"))


def climate_reference(truth: xr.Dataset, fields: xr.Dataset, period: tuple[str, str]) -> xr.Dataset:
    """The truth of `period` (inclusive; dates or hours) with the variables and levels of
    `fields`: (time, [level,] latitude, longitude), lazily."""
    reference = truth[list(fields.data_vars)].sel(time=slice(*period))
    if "level" in fields.coords:
        reference = reference.sel(level=fields.level)
    if reference.sizes["time"] < 2:
        raise ValueError(f"climate period {period[0]} to {period[1]} holds under 2 truth states")
    return reference


def evaluate_fields(forecast: xr.Dataset, fields: Sequence[Field] | None) -> list[Field]:
    """The fields to score: those asked for, or every decoded variable and level."""
    if fields is not None:
        return list(fields)
    found = []
    for variable, values in forecast.data_vars.items():
        levels = values.level.values.tolist() if "level" in values.dims else [None]
        found += [Field(str(variable), level) for level in levels]
    return found


def _field_forecast(forecast: xr.Dataset, field: Field) -> xr.Dataset:
    subset = forecast[[field.variable]]
    return subset if field.level is None else subset.sel(level=[field.level])


def _write_table(table: pd.DataFrame, path: str) -> None:
    with atomic_file(path) as temporary:
        table.to_csv(temporary, index=False)


def combine(evaluations: Sequence[Evaluation], climate: pd.DataFrame) -> Evaluation:
    """One Evaluation of every field's, its scores followed by the climate table's summary
    rows (std, hourly-change and worst spectrum ratios)."""
    return Evaluation(
        scores=pd.concat(
            [*(item.scores for item in evaluations), summary_scores(climate)], ignore_index=True
        ),
        spectra=pd.concat([item.spectra for item in evaluations], ignore_index=True),
        steps=pd.concat([item.steps for item in evaluations], ignore_index=True),
        seams=evaluations[0].seams,
        left_out=evaluations[0].left_out,
    )


def write_tables(
    evaluations: Sequence[Evaluation], climate_tables: Sequence[pd.DataFrame], outputs: dict
) -> tuple[Evaluation, pd.DataFrame]:
    """The fields' evaluations and climate tables combined, logged and written (climate_csv,
    metrics_csv, spectra_csv, steps_csv of `outputs`)."""
    climate = pd.concat(climate_tables, ignore_index=True)
    _write_table(climate, outputs["climate_csv"])
    log_climate(climate)
    result = combine(evaluations, climate)
    log_left_out(result.left_out)
    _write_table(result.scores, outputs["metrics_csv"])
    _write_table(result.spectra, outputs["spectra_csv"])
    _write_table(result.steps, outputs["steps_csv"])
    return result, climate


def run_evaluation(
    decoded: Sequence[str],
    dataset: str,
    outputs: dict[str, str],
    fields: Sequence[Field] | None,
    climatology_period: tuple[str, str] | None,
    blanket_size: int,
    overlap: int,
    seed: int = 0,
    climate_period_config: tuple[str, str] | None = None,
) -> Evaluation:
    """Score every decoded member of one trajectory size and write the tables and plots.

    outputs: paths of metrics_csv, metrics_zarr, spectra_csv, steps_csv, climate_csv,
    scores_png, spectra_png, seams_png, rank_histogram_png, climate_png.
    `climate_period_config`: the period of the climate diagnostics' truth (see
    `climate_period`). `seed` (the run's) draws the climatology ensemble and breaks rank ties.
    Fields are scored one at a time (less memory, and each variable keeps only its own levels).
    """
    forecast, truth = open_ensemble(decoded), open_truth(dataset)
    period = climatology_period or default_climatology_period(truth, forecast.time.values)
    log.info("climatology period %s to %s", *period)
    lead = forecast.prediction_timedelta.values
    span = trajectory_span(forecast.time.values, lead.size, lead[1] - lead[0])
    reference_period = climate_period(truth, climate_period_config, span)
    log.info("climate diagnostics against the truth of %s to %s", *reference_period)
    seams = seam_pairs(lead.size, blanket_size, overlap)
    evaluations, climate = [], []
    scored = evaluate_fields(forecast, fields)
    inputs = forecast.attrs.get(INPUTS, {}) | {
        "truth": dataset_record(dataset, truth, [field.variable for field in scored], "truth")
    }
    for field in scored:
        log.info("evaluating %s", field.label)
        subset = _field_forecast(forecast, field)
        evaluations.append(evaluate(subset, truth, period, blanket_size, overlap, seed))
        reference = climate_reference(truth, subset, reference_period)
        climate.append(climate_diagnostics(subset, reference, seams))
    result, climate = write_tables(evaluations, climate, outputs)
    metrics = table_to_dataset(result.scores).assign_attrs(
        climatology_period=list(period),
        climate_period=list(reference_period),
        blanket_size=blanket_size,
        overlap=overlap,
        seed=seed,
        climatology_window_days=CLIMATOLOGY_WINDOW_DAYS,
        seams=result.seams.tolist(),
        members=forecast.sizes["member"],
        start_dates=[str(np.datetime64(time, "h")) for time in forecast.time.values],
        left_out=[f"{source}: {reason}" for source, reason in result.left_out.items()],
        **{INPUTS: inputs},
    )
    with atomic_directory(Path(outputs["metrics_zarr"])) as temporary:
        metrics.to_zarr(temporary, mode="w-", consolidated=True, zarr_format=ZARR_FORMAT)
    units = {str(name): values.attrs.get("units", "") for name, values in forecast.items()}
    plot_evaluation(result, climate, outputs, units)
    return result


def plot_evaluation(
    result: Evaluation, climate: pd.DataFrame, outputs: dict[str, str], units: dict[str, str]
) -> None:
    """The evaluation's plots (scores_png, spectra_png, seams_png, rank_histogram_png,
    climate_png of `outputs`) from its tables; `units` maps variable -> units; the scores'
    plot notes the baselines left out."""
    notes = [f"{source} left out: {reason}" for source, reason in result.left_out.items()]
    score_plots.plot_scores(result.scores, outputs["scores_png"], units, notes)
    score_plots.plot_spectra(result.spectra, outputs["spectra_png"], units)
    ratios = result.scores[result.scores["metric"] == "seam_ratio"]
    score_plots.plot_seams(result.steps, result.seams, ratios, outputs["seams_png"])
    score_plots.plot_rank_histograms(result.scores, outputs["rank_histogram_png"])
    climate_plots.plot_climate(climate, outputs["climate_png"])


def log_left_out(left_out: dict[str, str]) -> None:
    """One warning line per baseline the dataset could not supply: its name and why."""
    for source, reason in left_out.items():
        log.warning("%s left out of the scores: %s", source, reason)


def log_climate(table: pd.DataFrame) -> None:
    """One log line per variable and level with its climate ratios and, as a warning, the
    judged ratios outside their target band (skyquilt.scoring.climate.TARGETS)."""
    missed = misses(table)
    worst = worst_spectrum_ratios(table).set_index(["variable", "level"])
    for (variable, level), rows in table.groupby(["variable", "level"], dropna=False, sort=False):
        label = variable if pd.isna(level) else f"{variable} {level}"
        ratios = rows[rows["metric"] != "spectrum_ratio"].set_index("metric")["ratio"]
        shown = [f"{name} {value:.3f}" for name, value in ratios.items()]
        if (variable, level) in worst.index:
            row = worst.loc[(variable, level)]
            shown.append(f"worst spectrum_ratio {row['ratio']:.3g} (k={row['wavenumber']})")
        log.info("%s: %s", label, ", ".join(shown))
        own = missed[(missed["variable"] == variable) & (missed["level"].isna() == pd.isna(level))]
        if len(own):
            names = own["metric"].value_counts(sort=False)
            log.warning(
                "%s misses its targets: %s", label,
                ", ".join(f"{name}{'' if count == 1 else f' at {count} wavenumbers'}"
                          for name, count in names.items()),
            )  # fmt: skip

"""The work of the evaluation job: scores, spectra and seam continuity of one trajectory size.

The samples are compared with the dataset's truth, persistence, climatology and a climatology
ensemble of the same size (drawn with the run's seed), and the
results written as tables and plots.

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
from skyquilt.io.shards import ZARR_FORMAT
from skyquilt.jobs.render import open_ensemble, open_truth
from skyquilt.planning.products import Field
from skyquilt.plotting import scores as score_plots
from skyquilt.scoring.baselines import CLIMATOLOGY_WINDOW_DAYS
from skyquilt.scoring.metrics import Evaluation, evaluate, table_to_dataset

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


def run_evaluation(
    decoded: Sequence[str],
    dataset: str,
    outputs: dict[str, str],
    fields: Sequence[Field] | None,
    climatology_period: tuple[str, str] | None,
    blanket_size: int,
    overlap: int,
    seed: int = 0,
) -> Evaluation:
    """Score every decoded member of one trajectory size and write the tables and plots.

    outputs: paths of metrics_csv, metrics_zarr, spectra_csv, steps_csv, scores_png,
    spectra_png, seams_png, rank_histogram_png. `seed` (the run's) draws the climatology
    ensemble and breaks rank ties. Fields are scored one at a time (less memory, and each variable
    keeps only its own levels).
    """
    forecast, truth = open_ensemble(decoded), open_truth(dataset)
    period = climatology_period or default_climatology_period(truth, forecast.time.values)
    log.info("climatology period %s to %s", *period)
    evaluations = []
    for field in evaluate_fields(forecast, fields):
        log.info("evaluating %s", field.label)
        evaluations.append(
            evaluate(_field_forecast(forecast, field), truth, period, blanket_size, overlap, seed)
        )
    result = Evaluation(
        scores=pd.concat([item.scores for item in evaluations], ignore_index=True),
        spectra=pd.concat([item.spectra for item in evaluations], ignore_index=True),
        steps=pd.concat([item.steps for item in evaluations], ignore_index=True),
        seams=evaluations[0].seams,
    )
    _write_table(result.scores, outputs["metrics_csv"])
    _write_table(result.spectra, outputs["spectra_csv"])
    _write_table(result.steps, outputs["steps_csv"])
    metrics = table_to_dataset(result.scores).assign_attrs(
        climatology_period=list(period),
        blanket_size=blanket_size,
        overlap=overlap,
        seed=seed,
        climatology_window_days=CLIMATOLOGY_WINDOW_DAYS,
        seams=result.seams.tolist(),
        members=forecast.sizes["member"],
        start_dates=[str(np.datetime64(time, "h")) for time in forecast.time.values],
    )
    with atomic_directory(Path(outputs["metrics_zarr"])) as temporary:
        metrics.to_zarr(temporary, mode="w-", consolidated=True, zarr_format=ZARR_FORMAT)
    units = {str(name): values.attrs.get("units", "") for name, values in forecast.items()}
    score_plots.plot_scores(result.scores, outputs["scores_png"], units)
    score_plots.plot_spectra(result.spectra, outputs["spectra_png"], units)
    ratios = result.scores[result.scores["metric"] == "seam_ratio"]
    score_plots.plot_seams(result.steps, result.seams, ratios, outputs["seams_png"])
    score_plots.plot_rank_histograms(result.scores, outputs["rank_histogram_png"])
    return result

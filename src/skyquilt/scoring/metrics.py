"""Scores of a decoded ensemble against ground truth, and two physical-consistency checks.

Forecasts follow WeatherBench2: dims (time [init], member, prediction_timedelta, [level,]
latitude, longitude). Global means are latitude-weighted with w = cos(phi) normalised to mean 1.

- scores per variable / level / lead time: ensemble-mean RMSE (skill), spread, spread-skill
  ratio sqrt((M+1)/M) * spread / skill, the fair CRPS (scoringrules), the fair energy score over
  the field and, for two members or more, the rank histogram (`rank_histogram_bin_<k>`) and
  its flatness (`rank_histogram_flatness`), defined in skyquilt.scoring.probabilistic;
- zonal power spectra of samples and truth;
- blanket-seam continuity: mean |x_{t+1} - x_t| across blanket seams over the same inside blankets.

Lead times are processed in blocks of at most MEMORY_BUDGET bytes (at least one lead), so memory
never holds the whole ensemble. Results are tidy DataFrames.
"""

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scoringrules
import torch
import xarray as xr

from skyquilt.sampling.blankets import blanket_count, fold
from skyquilt.scoring.baselines import (
    NoAnaloguesError,
    align_truth,
    climatology,
    climatology_ensemble,
    persistence,
)
from skyquilt.scoring.probabilistic import (
    energy_score,
    flatness,
    latitude_weights,
    rank_histogram,
)

SCORES = ("rmse", "spread", "spread_skill_ratio", "crps", "energy_score")
RANK_HISTOGRAM = "rank_histogram"
SCORE_COLUMNS = ["variable", "level", "lead_hours", "metric", "source", "value"]
SPECTRUM_COLUMNS = ["variable", "level", "wavenumber", "source", "value"]
STEP_COLUMNS = ["variable", "level", "step", "source", "value"]
SPATIAL_DIMS = ("latitude", "longitude")
# Bytes of one dataset loaded at once; lead times are processed in blocks within it.
MEMORY_BUDGET = 2**30


def spatial_mean(field: xr.Dataset) -> xr.Dataset:
    """Latitude-weighted global mean: (..., latitude, longitude) -> (...)."""
    return (field * latitude_weights(field.latitude)).mean(SPATIAL_DIMS)


def _lead_hours(forecast: xr.Dataset) -> np.ndarray:
    return forecast.prediction_timedelta.values / np.timedelta64(1, "h")


def _tidy(values: xr.Dataset, columns: list[str], **labels: object) -> pd.DataFrame:
    """Rows (variable, level, a column per dim, labels, value) of a small dataset.

    Its dims are level and one of lead_hours, wavenumber, step. Without a level axis, level is
    <NA>.
    """
    tables = []
    for variable, field in values.data_vars.items():
        table = field.reset_coords(drop=True).to_dataframe(name="value").reset_index()
        if "level" not in table:
            table["level"] = None
        tables.append(table.assign(variable=variable, **labels))
    return pd.concat(tables, ignore_index=True)[columns].astype({"level": "Int64"})


def _fair_crps(forecast: xr.Dataset, truth: xr.Dataset) -> xr.Dataset:
    """Pointwise CRPS: forecast (..., member, ...), truth (...) -> (...).

    The fair estimator needs two members; a single-member forecast gets the energy form,
    which then reduces to |x - y| (its CRPS as a deterministic forecast). The fair CRPS comes
    from scoringrules' probability-weighted-moment form ("pwm"): the same estimator from sorted
    members, in memory linear in M, where its "fair" form holds every pair of members at once
    (8.6 GB for 256 members at 8,192 points).
    """
    estimator = "pwm" if forecast.sizes["member"] > 1 else "nrg"
    return xr.apply_ufunc(
        scoringrules.crps_ensemble,
        truth,
        forecast,
        input_core_dims=[[], ["member"]],
        kwargs={"m_axis": -1, "estimator": estimator, "backend": "numpy"},
    )


def lead_scores(forecast: xr.Dataset, truth: xr.Dataset, seed: int = 0) -> dict[str, xr.Dataset]:
    """Scores per lead time, averaged over inits.

    forecast (time, member, [prediction_timedelta,] [level,] lat, lon), truth (time,
    [prediction_timedelta,] [level,] lat, lon) -> {metric: ([prediction_timedelta,] [level])}.

    rmse = sqrt(<(mean_m x - y)^2>), spread = sqrt(<var_m x>) with ddof=1, where <.> is the
    latitude-weighted mean over space and inits; crps = <fair CRPS>; energy_score over the field
    (probabilistic.energy_score). Spread, the ratio and the rank histogram (bins
    rank_histogram_bin_<k>, k = 0..M, and rank_histogram_flatness; ties broken with `seed`)
    need two or more members and are left out for a single member.
    """
    members = forecast.sizes["member"]
    error = forecast.mean("member") - truth
    skill = np.sqrt(spatial_mean(error**2).mean("time"))
    scores = {"rmse": skill, "crps": spatial_mean(_fair_crps(forecast, truth)).mean("time")}
    if members > 1:
        spread = np.sqrt(spatial_mean(forecast.var("member", ddof=1)).mean("time"))
        scores["spread"] = spread
        scores["spread_skill_ratio"] = np.sqrt((members + 1) / members) * spread / skill
    scores["energy_score"] = energy_score(forecast, truth)
    if members > 1:
        histogram = rank_histogram(forecast, truth, seed)
        scores[f"{RANK_HISTOGRAM}_flatness"] = flatness(histogram)
        for rank in histogram.bin.values:
            scores[f"{RANK_HISTOGRAM}_bin_{rank}"] = histogram.sel(bin=rank, drop=True)
    return scores


def state_blocks(
    *datasets: xr.Dataset, dim: str = "prediction_timedelta"
) -> Iterator[list[xr.Dataset]]:
    """Consecutive blocks along `dim` (lead times by default) of the datasets, loaded.

    As many entries of `dim` per block as fit in MEMORY_BUDGET bytes for the largest dataset
    (at least one).
    """
    count = datasets[0].sizes[dim]
    per_entry = max(dataset.nbytes for dataset in datasets) / count
    size = max(1, int(MEMORY_BUDGET // per_entry))
    for start in range(0, count, size):
        block = slice(start, start + size)
        yield [dataset.isel({dim: block}).load() for dataset in datasets]


def score_table(
    forecast: xr.Dataset, truth: xr.Dataset, source: str = "model", seed: int = 0
) -> pd.DataFrame:
    """Tidy scores of `forecast` against the hourly `truth`, block of leads by block.

    forecast: (time, member, prediction_timedelta, [level,] lat, lon); truth: (time, [level,]
    lat, lon) -> DataFrame with SCORE_COLUMNS. `seed` breaks rank ties.
    """
    blocks = [
        lead_scores(states, truths, seed)
        for states, truths in state_blocks(forecast, align_truth(truth, forecast))
    ]
    hours = _lead_hours(forecast)
    tables = []
    for metric in blocks[0]:
        values = xr.concat([scores[metric] for scores in blocks], dim="prediction_timedelta")
        values = values.assign_coords(prediction_timedelta=hours)
        values = values.rename(prediction_timedelta="lead_hours")
        tables.append(_tidy(values, SCORE_COLUMNS, metric=metric, source=source))
    return pd.concat(tables, ignore_index=True)


def zonal_power_spectrum(field: xr.Dataset) -> xr.Dataset:
    """One-sided zonal power spectrum, latitude-weighted mean over latitudes.

    field: (..., latitude, longitude [n]) -> (..., wavenumber [n // 2 + 1]), with
    P_k = c_k |rfft(x)_k|^2 / n^2 and c_k = 2 except for k = 0 and the Nyquist term, so that
    sum_k P_k is the mean of x^2 along each latitude circle (Parseval).
    """
    size = field.sizes["longitude"]
    wavenumber = np.arange(size // 2 + 1)
    doubled = np.where((wavenumber == 0) | (2 * wavenumber == size), 1.0, 2.0)

    def power(values: np.ndarray) -> np.ndarray:
        return doubled * np.abs(np.fft.rfft(values, axis=-1)) ** 2 / size**2

    spectra = xr.apply_ufunc(
        power,
        field,
        input_core_dims=[["longitude"]],
        output_core_dims=[["wavenumber"]],
        dask_gufunc_kwargs={"output_sizes": {"wavenumber": wavenumber.size}},
    ).assign_coords(wavenumber=wavenumber)
    return (spectra * latitude_weights(field.latitude)).mean("latitude")


def spectrum_table(forecast: xr.Dataset, truth: xr.Dataset) -> pd.DataFrame:
    """Zonal spectra of the samples and of the truth at the same valid times.

    Each is the mean over inits, members and leads -> DataFrame with SPECTRUM_COLUMNS, source
    "model" or "truth".
    """
    sources = {"model": forecast, "truth": align_truth(truth, forecast)}
    tables = []
    for name, states in sources.items():
        total, count = 0.0, 0
        for (block,) in state_blocks(states):
            spectra = zonal_power_spectrum(block)
            others = [dim for dim in spectra.dims if dim not in ("level", "wavenumber")]
            total = total + spectra.sum(others)
            count += int(np.prod([spectra.sizes[dim] for dim in others]))
        spectra = total / count
        tables.append(_tidy(spectra, SPECTRUM_COLUMNS, source=name))
    return pd.concat(tables, ignore_index=True)


def seam_pairs(trajectory_size: int, blanket_size: int, overlap: int) -> np.ndarray:
    """Indices t whose pair of states (t, t + 1) straddles a blanket seam, both states < T.

    Symmetric stitching takes every state of the padded trajectory from one blanket; a seam is
    where that blanket changes. The owners come from `blankets.fold` itself, so the seams are
    those of the stitching that generation uses.
    """
    count = blanket_count(trajectory_size, blanket_size, overlap)
    owners = torch.arange(count).repeat_interleave(blanket_size).reshape(count, blanket_size)
    owner = fold(owners, overlap, mode="symmetric").numpy()
    seams = np.flatnonzero(np.diff(owner) != 0)
    return seams[seams + 1 < trajectory_size]


def step_sizes(states: xr.Dataset) -> xr.Dataset:
    """Mean absolute change between consecutive states along prediction_timedelta.

    states: (..., prediction_timedelta [T], ..., latitude, longitude) -> (step [T - 1], [level])
    where step t is <|x_{t+1} - x_t|>, the latitude-weighted mean over space and every other
    dim (inits, members). Leads are loaded block by block.
    """
    steps = []
    previous = None
    for (block,) in state_blocks(states):
        # The first pair of a block reaches back to the last state of the previous one.
        joined = block if previous is None else xr.concat([previous, block], "prediction_timedelta")
        change = spatial_mean(np.abs(joined.diff("prediction_timedelta")))
        others = [dim for dim in change.dims if dim not in ("level", "prediction_timedelta")]
        steps.append(change.mean(others))
        previous = block.isel(prediction_timedelta=[-1])
    steps = xr.concat(steps, dim="prediction_timedelta").rename(prediction_timedelta="step")
    return steps.assign_coords(step=np.arange(steps.sizes["step"]))


def step_table(forecast: xr.Dataset, truth: xr.Dataset) -> pd.DataFrame:
    """Step sizes of the samples and of the truth at the same valid times -> STEP_COLUMNS."""
    sources = {"model": forecast, "truth": align_truth(truth, forecast)}
    tables = [
        _tidy(step_sizes(states), STEP_COLUMNS, source=name) for name, states in sources.items()
    ]
    return pd.concat(tables, ignore_index=True)


def seam_table(steps: pd.DataFrame, seams: np.ndarray) -> pd.DataFrame:
    """Seam-continuity ratio per (variable, level, source) from a STEP_COLUMNS table.

    ratio = mean step at seam pairs / mean step at the other pairs; 1.0 means no visible seam.
    Rows have SCORE_COLUMNS with metric "seam_ratio" and no lead time. Sources without seams
    (truth) give the ratio of the same positions, i.e. what 1.0 looks like for this data.
    """
    at_seam = steps["step"].isin(seams)
    keys = ["variable", "level", "source"]
    means = steps.groupby([*keys, at_seam.rename("seam")], dropna=False)["value"].mean()
    # Without seams (T <= K) the seam column is missing and the ratio is NaN.
    by_position = means.unstack("seam").reindex(columns=[True, False])
    ratio = (by_position[True] / by_position[False]).rename("value")
    table = ratio.reset_index().assign(lead_hours=np.nan, metric="seam_ratio")
    return table[SCORE_COLUMNS].astype({"level": "Int64"})


def table_to_dataset(table: pd.DataFrame) -> xr.Dataset:
    """A tidy table as a dataset with one variable per column along dim `row`, for `to_zarr`.

    Level becomes float with NaN for <NA>, which zarr can store.
    """
    return xr.Dataset.from_dataframe(table.astype({"level": "float64"}).rename_axis("row"))


def table_from_dataset(dataset: xr.Dataset, columns: list[str]) -> pd.DataFrame:
    """The inverse of table_to_dataset: -> DataFrame with `columns` in that order."""
    table = dataset.to_dataframe().reset_index(drop=True)[columns]
    return table.astype({"level": "Int64"})


@dataclass
class Evaluation:
    """All tables of one evaluation; `scores` also holds the seam ratios (metric seam_ratio).

    left_out: baseline source -> why the dataset could not supply it (not in `scores`).
    """

    scores: pd.DataFrame
    spectra: pd.DataFrame
    steps: pd.DataFrame
    seams: np.ndarray
    left_out: dict[str, str] = dataclasses.field(default_factory=dict)


def evaluate(
    forecast: xr.Dataset,
    truth: xr.Dataset,
    climatology_period: tuple[str, str],
    blanket_size: int,
    overlap: int,
    seed: int = 0,
) -> Evaluation:
    """Score the ensemble, persistence, climatology and the climatology ensemble; spectra and
    seam continuity.

    forecast: a decoded ensemble of whole trajectories (prediction_timedelta holds states
    0 .. T-1 in order); truth: the hourly dataset, also the source of the baselines. `seed`
    (the run's) draws the climatology ensemble, of as many members as the forecast, and breaks
    rank ties. A climatology ensemble that the climatology period cannot supply (no
    same-season trajectory of T states in it) is left out (`Evaluation.left_out`).
    """
    init, lead = forecast.time.values, forecast.prediction_timedelta.values
    members = forecast.sizes["member"]
    fields = truth[list(forecast.data_vars)]
    if "level" in forecast.coords:  # the forecast's levels only
        fields = fields.sel(level=forecast.level)
    references = {
        "persistence": persistence(fields, init, lead),
        "climatology": climatology(fields, init, lead, climatology_period),
    }
    left_out = {}
    try:
        references["climatology_ensemble"] = climatology_ensemble(
            fields, init, lead, climatology_period, members, seed
        )
    except NoAnaloguesError as error:
        left_out["climatology_ensemble"] = str(error)
    scores = [score_table(forecast, truth, "model", seed)]
    scores += [score_table(reference, truth, name, seed) for name, reference in references.items()]
    seams = seam_pairs(forecast.sizes["prediction_timedelta"], blanket_size, overlap)
    steps = step_table(forecast, truth)
    scores.append(seam_table(steps, seams))
    return Evaluation(
        scores=pd.concat(scores, ignore_index=True),
        spectra=spectrum_table(forecast, truth),
        steps=steps,
        seams=seams,
        left_out=left_out,
    )

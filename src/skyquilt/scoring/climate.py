"""Climate diagnostics: do sampled trajectories have the statistics of the weather they imitate?

Four ratios per variable (and level), each of decoded samples against a reference:

- std_ratio: std over every sample, state and grid point (latitude-weighted), model / truth;
- hourly_change_ratio: mean |x(t+1) - x(t)| between consecutive states (latitude-weighted),
  model / truth, the truth's states taken as far apart as the model's;
- seam_ratio: the model's mean change across the state pairs where symmetric stitching
  switches blanket / its mean change inside blankets (the reference column holds the latter);
- spectrum_ratio: the model's mean zonal power / the truth's, per zonal wavenumber.

The fields are xarray datasets with dims (sample dims..., time axis, [level,] latitude,
longitude); the time axis is `prediction_timedelta` when present, else `time`, so both decoded
forecasts (time [init], member, prediction_timedelta, ...) and a stretch of hourly truth
(time, ...) fit. They are summarised a block of states at a time into additive sums
(`FieldSums`), so memory does not grow with the ensemble, and sums of separate pieces (single
blankets sampled one at a time) add up.

Targets (TARGETS) are the bands a model should meet; `misses` lists the rows outside them. A
spectrum ratio is judged only at wavenumbers k >= 1 where the truth holds at least
SIGNIFICANT_POWER of its peak power (over k >= 1).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from skyquilt.scoring.metrics import (
    SCORE_COLUMNS,
    SPATIAL_DIMS,
    spatial_mean,
    state_blocks,
    zonal_power_spectrum,
)
from skyquilt.scoring.probabilistic import latitude_weights

TARGETS = {
    "std_ratio": (0.9, 1.1),
    "hourly_change_ratio": (0.8, 1.25),
    "seam_ratio": (0.9, 1.1),
    "spectrum_ratio": (0.5, 2.0),
}
# Composed / single blankets of the same model (the composition-fidelity check).
FIDELITY_TARGETS = {"hourly_change_ratio": (0.0, 1.15), "std_ratio": (0.95, 1.05)}
SIGNIFICANT_POWER = 0.01
CLIMATE_COLUMNS = [
    "variable", "level", "metric", "wavenumber", "model", "reference", "ratio", "judged",
]  # fmt: skip
FIDELITY_COLUMNS = ["variable", "level", "metric", "composed", "single", "ratio"]
# Summary rows of metrics.csv (SCORE_COLUMNS): the climate table's ratios, the spectrum's worst.
SUMMARY_METRICS = ("std_ratio", "hourly_change_ratio", "spectrum_ratio_worst")
KEPT_DIMS = ("level", "step", "wavenumber")


def time_axis(fields: xr.Dataset) -> str:
    """The states' axis: prediction_timedelta when the fields have one, else time."""
    return "prediction_timedelta" if "prediction_timedelta" in fields.dims else "time"


def _sum_others(values: xr.Dataset) -> xr.Dataset:
    """Sum over every dim but level, step and wavenumber."""
    return values.sum([dim for dim in values.dims if dim not in KEPT_DIMS])


@dataclass
class FieldSums:
    """Additive sums of fields; `a + b` are the sums of both.

    weighted, squares: ([level]) sums of w x and w x^2 over every value, w the latitude
        weights of mean 1; values: how many values were summed (per variable and level).
    changes: (step [T - lag], [level]) sums over samples of the latitude-weighted mean of
        |x(t + lag) - x(t)|; series: how many samples each step sums.
    power: (wavenumber, [level]) sums of zonal power spectra over samples and states; spectra:
        how many.
    """

    weighted: xr.Dataset
    squares: xr.Dataset
    values: float
    changes: xr.Dataset
    series: int
    power: xr.Dataset
    spectra: int

    def __add__(self, other: "FieldSums") -> "FieldSums":
        if self.changes.sizes["step"] != other.changes.sizes["step"]:
            raise ValueError("sums of trajectories of different lengths do not add")
        return FieldSums(
            self.weighted + other.weighted,
            self.squares + other.squares,
            self.values + other.values,
            self.changes + other.changes,
            self.series + other.series,
            self.power + other.power,
            self.spectra + other.spectra,
        )

    @property
    def std(self) -> xr.Dataset:
        """([level]) latitude-weighted std over everything summed."""
        mean = self.weighted / self.values
        return np.sqrt(np.maximum(self.squares / self.values - mean**2, 0.0))

    @property
    def steps(self) -> xr.Dataset:
        """(step, [level]) mean change per step."""
        return self.changes / self.series

    @property
    def spectrum(self) -> xr.Dataset:
        """(wavenumber, [level]) mean zonal power spectrum."""
        return self.power / self.spectra


def _step_changes(joined: xr.Dataset, dim: str, lag: int, first: int) -> xr.Dataset:
    """Sums over samples of the mean |x(t + lag) - x(t)| of consecutive `joined` states.

    joined: (..., dim [n], ...) -> (step [n - lag], [level]), steps numbered from `first`.
    """
    states = joined.drop_vars(dim, errors="ignore")
    later, earlier = states.isel({dim: slice(lag, None)}), states.isel({dim: slice(None, -lag)})
    changes = _sum_others(spatial_mean(np.abs(later - earlier)).rename({dim: "step"}))
    return changes.assign_coords(step=first + np.arange(changes.sizes["step"]))


def _series(fields: xr.Dataset, dim: str) -> int:
    """How many trajectories `fields` holds: the product of its sample dims' sizes."""
    others = set(fields.dims) - {dim, *KEPT_DIMS, *SPATIAL_DIMS}
    return int(np.prod([fields.sizes[name] for name in others]))


def summarise(fields: xr.Dataset, lag: int = 1) -> FieldSums:
    """FieldSums of `fields` (sample dims..., time axis [T], [level,] lat, lon), `lag` the
    distance in states of the pairs whose changes are summed; a block of states at a time."""
    dim = time_axis(fields)
    if fields.sizes[dim] <= lag:
        raise ValueError(f"{fields.sizes[dim]} states hold no pair {lag} states apart")
    weights = latitude_weights(fields.latitude)
    moments, spectra, changes = [], [], []
    previous, start = None, 0
    # Sums of squares of geopotential need float64; blocks are sized for it.
    for (block,) in state_blocks(fields.astype("float64"), dim=dim):
        moments.append((_sum_others(block * weights), _sum_others(block**2 * weights)))
        spectra.append(_sum_others(zonal_power_spectrum(block)))
        # The first pairs of a block reach back to the last `lag` states of the ones before.
        joined = block if previous is None else xr.concat([previous, block], dim)
        first = start - (0 if previous is None else previous.sizes[dim])
        if joined.sizes[dim] > lag:
            changes.append(_step_changes(joined, dim, lag, first))
        previous, start = joined.isel({dim: slice(-lag, None)}), start + block.sizes[dim]
    series = _series(fields, dim)
    grid = fields.sizes["latitude"] * fields.sizes["longitude"]
    return FieldSums(
        weighted=sum(weighted for weighted, _ in moments),
        squares=sum(squares for _, squares in moments),
        values=float(series * fields.sizes[dim] * grid),
        changes=xr.concat(changes, "step"),
        series=series,
        power=sum(spectra),
        spectra=series * fields.sizes[dim],
    )


def state_lag(step: np.timedelta64, truth: xr.Dataset) -> int:
    """How many of the truth's time steps lie between two sampled states `step` apart."""
    spacing = np.diff(truth[time_axis(truth)].values[:2])[0]
    lag = step / spacing
    if lag < 1 or lag != int(lag):
        raise ValueError(f"samples {step} apart are not a multiple of the truth's {spacing}")
    return int(lag)


def state_step(samples: xr.Dataset) -> np.timedelta64:
    """The time between consecutive states of `samples`."""
    return np.diff(samples[time_axis(samples)].values[:2])[0]


def _tidy(values: xr.Dataset, name: str) -> pd.DataFrame:
    """Columns variable, level (<NA> without one), [wavenumber,] `name` of a small dataset."""
    tables = []
    for variable, field in values.data_vars.items():
        field = field.reset_coords(drop=True)
        if field.ndim == 0:  # no level, no wavenumber: one row
            table = pd.DataFrame({name: [field.item()]})
        else:
            table = field.to_dataframe(name=name).reset_index()
        if "level" not in table:
            table["level"] = None
        tables.append(table.assign(variable=variable))
    return pd.concat(tables, ignore_index=True).astype({"level": "Int64"})


def _ratio_rows(metric: str, model: xr.Dataset, reference: xr.Dataset) -> pd.DataFrame:
    """Rows of CLIMATE_COLUMNS of one metric: model, reference and their ratio."""
    keys = ["variable", "level", *(["wavenumber"] if "wavenumber" in model.dims else [])]
    table = _tidy(model, "model").merge(_tidy(reference, "reference"), on=keys)
    table = table.assign(metric=metric, ratio=table["model"] / table["reference"], judged=True)
    if "wavenumber" not in table:
        table["wavenumber"] = pd.NA
    return table.astype({"wavenumber": "Int64"})[CLIMATE_COLUMNS]


def _seam_means(steps: xr.Dataset, seams: np.ndarray) -> tuple[xr.Dataset, xr.Dataset]:
    """Mean change across the seam pairs and inside blankets: (step, [level]) -> ([level])."""
    at_seam = np.isin(steps.step.values, seams)
    across = steps.isel(step=np.flatnonzero(at_seam)).mean("step")
    return across, steps.isel(step=np.flatnonzero(~at_seam)).mean("step")


def _judge_spectrum(table: pd.DataFrame) -> pd.DataFrame:
    """Judge spectrum rows only at k >= 1 where the truth holds SIGNIFICANT_POWER of its peak."""
    rows = table["metric"] == "spectrum_ratio"
    resolved = rows & (table["wavenumber"] >= 1)
    peak = (
        table[resolved].groupby(["variable", "level"], dropna=False)["reference"].transform("max")
    )
    significant = table.loc[resolved, "reference"] >= SIGNIFICANT_POWER * peak
    table.loc[rows, "judged"] = False
    table.loc[significant[significant].index, "judged"] = True
    return table


def diagnostics_table(model: FieldSums, truth: FieldSums, seams: np.ndarray) -> pd.DataFrame:
    """The climate diagnostics of summed samples against summed truth -> CLIMATE_COLUMNS.

    seams: indices t of the model's state pairs (t, t + 1) across blanket seams
    (metrics.seam_pairs); without any (single blankets) the seam ratio is NaN and not judged.
    """
    model_steps, truth_steps = model.steps, truth.steps
    across, inside = _seam_means(model_steps, seams)
    tables = [
        _ratio_rows("std_ratio", model.std, truth.std),
        _ratio_rows("hourly_change_ratio", model_steps.mean("step"), truth_steps.mean("step")),
        _ratio_rows("seam_ratio", across, inside).assign(judged=len(seams) > 0),
        _ratio_rows("spectrum_ratio", model.spectrum, truth.spectrum),
    ]
    return _judge_spectrum(pd.concat(tables, ignore_index=True))


def climate_diagnostics(
    samples: xr.Dataset, truth: xr.Dataset, seams: np.ndarray | list[int]
) -> pd.DataFrame:
    """Climate diagnostics of sampled trajectories against a stretch of truth.

    Arguments:
        samples: (sample dims..., time axis [T], [level,] latitude, longitude), states equally
            spaced; e.g. decoded members (time, member, prediction_timedelta, ...).
        truth: (time, [level,] latitude, longitude), consecutive states of the reference
            period, with the samples' variables and levels, spaced by a divisor of their step.
        seams: indices t of the pairs (t, t + 1) across blanket seams (metrics.seam_pairs).

    Returns:
        CLIMATE_COLUMNS: one row per (variable, level, metric), spectrum_ratio one per
        wavenumber; `judged` marks the rows TARGETS apply to.
    """
    sums = summarise(samples), summarise(truth, state_lag(state_step(samples), truth))
    return diagnostics_table(*sums, np.asarray(seams, dtype=int))


def misses(table: pd.DataFrame, targets: dict = TARGETS) -> pd.DataFrame:
    """The judged rows whose ratio lies outside its metric's band in `targets` (or is NaN)."""
    bands = table["metric"].map(targets)
    known = bands.notna() & table.get("judged", pd.Series(True, index=table.index))
    low = bands[known].str[0]
    high = bands[known].str[1]
    ratio = table.loc[known, "ratio"]
    inside = (ratio >= low) & (ratio <= high)
    return table[known][~inside.to_numpy()]


def worst_spectrum_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Per (variable, level), the judged spectrum ratio farthest from 1 in log: rows of the
    table's spectrum_ratio rows (one each)."""
    judged = table[(table["metric"] == "spectrum_ratio") & table["judged"]].copy()
    judged["distance"] = np.abs(np.log(judged["ratio"].astype(float)))
    worst = judged.loc[judged.groupby(["variable", "level"], dropna=False)["distance"].idxmax()]
    return worst.drop(columns="distance")


def summary_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of metrics.csv (SCORE_COLUMNS, source model, no lead time): std_ratio,
    hourly_change_ratio and spectrum_ratio_worst (the worst judged spectrum ratio)."""
    worst = worst_spectrum_ratios(table).assign(metric="spectrum_ratio_worst")
    rows = pd.concat(
        [table[table["metric"].isin(SUMMARY_METRICS)], worst], ignore_index=True
    ).rename(columns={"ratio": "value"})
    rows = rows.assign(lead_hours=np.nan, source="model")[SCORE_COLUMNS]
    return rows.astype({"level": "Int64", "value": "float64"})


def fidelity_table(composed: pd.DataFrame, single: pd.DataFrame) -> pd.DataFrame:
    """Composed over single blankets of the same model: FIDELITY_COLUMNS.

    composed, single: climate diagnostics (CLIMATE_COLUMNS) of composed trajectories and of
    single blankets against the same truth; one row per (variable, level, metric) of
    FIDELITY_TARGETS with each one's ratio and ratio = composed / single.
    """
    keys = ["variable", "level", "metric"]

    def ratios(table: pd.DataFrame, name: str) -> pd.DataFrame:
        rows = table[table["metric"].isin(FIDELITY_TARGETS)]
        return rows[[*keys, "ratio"]].rename(columns={"ratio": name})

    table = ratios(composed, "composed").merge(ratios(single, "single"), on=keys)
    return table.assign(ratio=table["composed"] / table["single"])[FIDELITY_COLUMNS]

"""Reference forecasts built from the truth dataset: truth at valid times, persistence, climatology.

The truth dataset is ERA5-like (WeatherBench2 layout): dims (time hourly, [level,] latitude,
longitude). A decoded ensemble forecast has dims (time [init], member, prediction_timedelta,
[level,] latitude, longitude); the baselines come back in that same layout with a member axis of
size 1, so that one scoring code path serves the model and both baselines.
"""

import numpy as np
import xarray as xr

FORECAST_DIMS = ("time", "member", "prediction_timedelta")


def valid_times(init_times: np.ndarray, lead_times: np.ndarray) -> xr.DataArray:
    """Valid time of every (init, lead): init (I,) datetime64, lead (L,) timedelta64 -> (I, L).

    The result has dims (time, prediction_timedelta) with both as coordinates.
    """
    init = np.asarray(init_times, dtype="datetime64[ns]")
    lead = np.asarray(lead_times, dtype="timedelta64[ns]")
    return xr.DataArray(init, dims="time", coords={"time": init}) + xr.DataArray(
        lead, dims="prediction_timedelta", coords={"prediction_timedelta": lead}
    )


def _format_times(times: np.ndarray) -> str:
    return ", ".join(np.datetime_as_string(times, unit="h"))


def select_times(truth: xr.Dataset, times: xr.DataArray) -> xr.Dataset:
    """Truth at the valid times `times` (time, prediction_timedelta).

    truth: (time, ...) -> (time [init], prediction_timedelta, ...) with the valid times kept as
    the 2-D coordinate `valid_time`. Raises KeyError naming the missing times and the range the
    dataset covers.
    """
    missing = np.setdiff1d(times.values.ravel(), truth.time.values)
    if missing.size:
        shown = _format_times(missing[:5]) + (" ..." if missing.size > 5 else "")
        covered = _format_times(truth.time.values[[0, -1]]).replace(", ", " to ")
        raise KeyError(
            f"ground truth is missing {missing.size} valid time(s): {shown}; "
            f"the dataset covers {covered}"
        )
    # Vectorised indexing: the 2-D (init, lead) indexer replaces the truth's time axis.
    selected = truth.sel(time=times.rename(time="init"))
    return selected.rename(time="valid_time").rename(init="time")


def align_truth(truth: xr.Dataset, forecast: xr.Dataset) -> xr.Dataset:
    """The truth at a forecast's valid times (init + prediction_timedelta), on its grid and levels.

    truth: (time, [level,] latitude, longitude); forecast: (time, [member,] prediction_timedelta,
    [level,] latitude, longitude) -> (time, prediction_timedelta, [level,] latitude, longitude)
    with the forecast's data variables.
    """
    truth = truth[list(forecast.data_vars)]
    for name in ("latitude", "longitude"):
        if truth.sizes[name] != forecast.sizes[name] or not np.allclose(
            truth[name].values, forecast[name].values
        ):
            raise ValueError(f"truth and forecast {name} grids differ")
        truth = truth.assign_coords({name: forecast[name].variable})
    if "level" in forecast.coords:  # a level axis, or one level kept as a scalar coordinate
        truth = truth.sel(level=forecast.level)
    for name, field in truth.data_vars.items():
        if set(field.dims) - {"time"} != set(forecast[name].dims) - set(FORECAST_DIMS):
            raise ValueError(
                f"{name}: truth dims {field.dims} do not match forecast dims {forecast[name].dims}"
            )
    times = valid_times(forecast.time.values, forecast.prediction_timedelta.values)
    return select_times(truth, times)


def _forecast_layout(states: xr.Dataset) -> xr.Dataset:
    """Add a member axis of size 1 and order dims as a decoded forecast."""
    return states.expand_dims(member=[0]).transpose(*FORECAST_DIMS, ...)


def persistence(truth: xr.Dataset, init_times: np.ndarray, lead_times: np.ndarray) -> xr.Dataset:
    """state(init + lead) = state(init) for every lead.

    truth: (time, ...) -> (time [I], member [1], prediction_timedelta [L], ...).
    """
    initial = select_times(truth, valid_times(init_times, [np.timedelta64(0, "ns")]))
    initial = initial.isel(prediction_timedelta=0, drop=True).drop_vars("valid_time")
    lead = np.asarray(lead_times, dtype="timedelta64[ns]")
    return _forecast_layout(initial.expand_dims(prediction_timedelta=lead))


def climatology(
    truth: xr.Dataset,
    init_times: np.ndarray,
    lead_times: np.ndarray,
    period: tuple[str, str],
) -> xr.Dataset:
    """Mean of the truth over `period` (inclusive), by hour of day where it can be.

    By hour of day when the period covers every hour of day that a valid time needs, else the
    plain mean.

    truth: (time, ...) -> (time [I], member [1], prediction_timedelta [L], ...); attribute
    `climatology` says which of "hour_of_day" or "all_hours" was used.
    """
    training = truth.sel(time=slice(*period))
    if training.sizes["time"] == 0:
        raise ValueError(f"climatology period {period[0]} to {period[1]} holds no truth")
    times = valid_times(init_times, lead_times)
    needed_hours = np.unique(times.dt.hour.values)
    if np.isin(needed_hours, training.time.dt.hour.values).all():
        means = training.groupby("time.hour").mean(keep_attrs=True)
        states = means.sel(hour=times.dt.hour).drop_vars("hour")
        kind = "hour_of_day"
    else:
        states = training.mean("time", keep_attrs=True).broadcast_like(times)
        kind = "all_hours"
    forecast = _forecast_layout(states)
    return forecast.assign_attrs(climatology=kind, climatology_period=list(period))


# Days either side of a valid time's day of year from which climatology members are drawn.
CLIMATOLOGY_WINDOW_DAYS = 15
# Mixed into the run seed so that these draws are not those of any other use of the seed.
CLIMATOLOGY_STREAM = 0xC11A


def _day_distance(times: np.ndarray, reference: np.datetime64) -> np.ndarray:
    """Days between the days of year of `times` and of `reference`, cyclic over 365 days."""
    days = xr.DataArray(np.asarray(times, dtype="datetime64[ns]")).dt.dayofyear.values
    day = xr.DataArray(np.asarray([reference], dtype="datetime64[ns]")).dt.dayofyear.values[0]
    distance = np.abs(days - day)
    return np.minimum(distance, 365 - distance)


class NoAnaloguesError(ValueError):
    """The climatology period holds no same-season trajectory of the evaluated length."""


def analogue_starts(
    truth_times: np.ndarray,
    init_times: np.ndarray,
    lead_times: np.ndarray,
    period: tuple[str, str],
    window_days: int = CLIMATOLOGY_WINDOW_DAYS,
) -> list[np.ndarray]:
    """For each init, the truth times s that may start a climatology member.

    s lies in `period` (inclusive) at the init's hour of day, within `window_days` of its day
    of year (any year), and s + every lead is a truth time in the period too, so that a member
    never reaches outside the climatology period (which excludes the evaluated trajectories).
    Raises NoAnaloguesError naming an init without any.
    """
    times = np.asarray(truth_times, dtype="datetime64[ns]")
    first, last = (np.datetime64(bound, "ns") for bound in period)
    if len(period[1]) == 10:  # a date: the whole day
        last = last + np.timedelta64(1, "D") - np.timedelta64(1, "ns")
    inside = times[(times >= first) & (times <= last)]
    lead = np.asarray(lead_times, dtype="timedelta64[ns]")
    reach = inside[np.isin(inside + lead.max(), inside)]
    whole = reach[np.all(np.isin(reach[:, None] + lead[None, :], inside), axis=1)]
    starts = []
    for init in np.asarray(init_times, dtype="datetime64[ns]"):
        same_hour = whole[whole.astype("datetime64[h]").astype(np.int64) % 24 == _hour(init)]
        chosen = same_hour[_day_distance(same_hour, init) <= window_days]
        if chosen.size == 0:
            raise NoAnaloguesError(
                f"climatology ensemble: no trajectory of the climatology period {period[0]} to "
                f"{period[1]} starts at hour {_hour(init)} within {window_days} days of the day "
                f"of year of {np.datetime_as_string(init, unit='h')}"
            )
        starts.append(chosen)
    return starts


def _hour(time: np.datetime64) -> int:
    return int(np.asarray(time, dtype="datetime64[h]").astype(np.int64) % 24)


def climatology_ensemble(
    truth: xr.Dataset,
    init_times: np.ndarray,
    lead_times: np.ndarray,
    period: tuple[str, str],
    members: int,
    seed: int,
    window_days: int = CLIMATOLOGY_WINDOW_DAYS,
) -> xr.Dataset:
    """A probabilistic climatology: `members` trajectories of the truth from the period.

    For each init and member, a start s is drawn uniformly, with replacement, from
    `analogue_starts` (same hour of day, within `window_days` of the day of year, any year of
    the period) by numpy's Generator seeded with (seed, CLIMATOLOGY_STREAM), inits in order;
    the member's state at lead l is the truth at s + l. Deterministic given the seed.

    truth: (time, ...) -> (time [I], member [members], prediction_timedelta [L], ...), lazily
    when the truth is, with the drawn starts as coordinate `analogue_start` (time, member).
    """
    init = np.asarray(init_times, dtype="datetime64[ns]")
    lead = np.asarray(lead_times, dtype="timedelta64[ns]")
    generator = np.random.default_rng([int(seed), CLIMATOLOGY_STREAM])
    candidates = analogue_starts(truth.time.values, init, lead, period, window_days)
    starts = np.stack(
        [choices[generator.integers(choices.size, size=members)] for choices in candidates]
    )
    positions = truth.get_index("time").get_indexer((starts[:, :, None] + lead).ravel())
    index = xr.DataArray(
        positions.reshape(*starts.shape, lead.size),
        dims=FORECAST_DIMS,
        coords={"time": init, "member": np.arange(members), "prediction_timedelta": lead},
    )
    states = truth.drop_vars("time").isel(time=index)
    states = states.assign_coords(analogue_start=(("time", "member"), starts))
    return states.transpose(*FORECAST_DIMS, ...).assign_attrs(
        climatology_period=list(period), climatology_window_days=window_days
    )

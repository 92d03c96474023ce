"""Probabilistic scores of an ensemble: rank histograms and the energy score.

Forecasts follow WeatherBench2: (time [init], member, prediction_timedelta, [level,] latitude,
longitude); the truth has the same dims without member. Torch-free.

- Rank histogram (Talagrand diagram): at every point the rank r in {0, ..., M} of the truth
  among the M members, r = #{m: x_m < y} + U, U uniform on {0, ..., #{m: x_m = y}} (ties broken
  at random, from a seeded generator), so that an exchangeable truth has every rank with
  probability 1/(M+1). Frequencies are the latitude-weighted (cos phi) share of points, over
  space and inits, in each rank: bins k = 0 .. M summing to 1.
- Flatness: half the L1 distance of the frequencies f_k from uniform, scaled to [0, 1],
  flatness = sum_k |f_k - 1/(M+1)| / (2 (1 - 1/(M+1))); 0 for a flat (reliable) histogram, 1
  when every truth has one and the same rank. A U shape (too little spread), a dome (too much)
  or a slope (bias) all raise it; the bins show which.
- Energy score over the whole field (the spatial points are the variables), as WeatherBench2's
  and scoringrules' ES = E||X - y|| - 1/2 E||X - X'||, with the fair estimator (E||X - X'|| over
  the M(M-1) pairs of distinct members; the plain 1/M^2 form for a single member, where it is
  ||x - y||). The norm is latitude weighted: ||z||^2 = mean_i w_i z_i^2 with w = cos(phi)
  normalised to mean 1, computed by scaling the fields by sqrt(w_i / n) before the Euclidean
  norm, so it is in the variable's units and for one member equals the field's weighted RMSE.
  Averaged over inits. Computed here, a block of member pairs at a time (`_energy`; the tests
  check it against scoringrules' es_ensemble), because scoringrules forms every pair's
  difference at once.
"""

import numpy as np
import xarray as xr

SPATIAL_DIMS = ("latitude", "longitude")
# Bytes of the (rows x members x points) member differences formed at once.
ENERGY_BUDGET = 2**26


def latitude_weights(latitude: xr.DataArray) -> xr.DataArray:
    """cos(latitude) normalised to mean 1 over the latitude axis: (lat,) -> (lat,)."""
    weights = np.cos(np.deg2rad(latitude))
    return weights / weights.mean()


def _tie_generator(seed: int, lead: np.timedelta64) -> np.random.Generator:
    """The generator of one lead time's tie breaks: the same whatever block the lead is in."""
    hours = int(np.asarray(lead, dtype="timedelta64[s]").astype(np.int64))
    return np.random.default_rng([int(seed), hours])


def truth_ranks(
    forecast: np.ndarray, truth: np.ndarray, generator: np.random.Generator
) -> np.ndarray:
    """Rank of the truth among the members: forecast (M, ...), truth (...) -> (...) ints in
    0..M, ties broken uniformly at random by `generator`."""
    below = (forecast < truth).sum(axis=0)
    equal = (forecast == truth).sum(axis=0)
    return below + np.floor(generator.random(below.shape) * (equal + 1)).astype(np.int64)


def rank_histogram(forecast: xr.Dataset, truth: xr.Dataset, seed: int = 0) -> xr.Dataset:
    """Latitude-weighted rank frequencies per lead: forecast (time, member,
    prediction_timedelta, [level,] lat, lon), truth (time, prediction_timedelta, [level,] lat,
    lon) -> (prediction_timedelta, [level,] bin [M + 1]), summing to 1 along bin."""
    members = forecast.sizes["member"]
    bins = np.arange(members + 1)
    results = {}
    for name, field in forecast.data_vars.items():
        target = truth[name]
        per_lead = []
        for lead in field.prediction_timedelta.values:
            states = field.sel(prediction_timedelta=lead)
            observed = target.sel(prediction_timedelta=lead).transpose(
                *[dim for dim in states.dims if dim != "member"]
            )
            ranks = truth_ranks(
                states.transpose("member", *observed.dims).values,
                observed.values,
                _tie_generator(seed, lead),
            )
            ranks = xr.DataArray(ranks, dims=observed.dims, coords=observed.coords)
            weights = latitude_weights(observed.latitude)
            others = [dim for dim in ranks.dims if dim not in ("level",)]
            counts = [(weights * (ranks == k)).mean(others) for k in bins]
            per_lead.append(xr.concat(counts, dim="bin").assign_coords(bin=bins))
        results[name] = xr.concat(per_lead, dim="prediction_timedelta")
    histogram = xr.Dataset(results).drop_vars("valid_time", errors="ignore")
    return histogram.assign_coords(prediction_timedelta=forecast.prediction_timedelta.values)


def flatness(histogram: xr.Dataset) -> xr.Dataset:
    """sum_k |f_k - 1/K| / (2 (1 - 1/K)) over the K bins: (..., bin) -> (...), in [0, 1]."""
    bins = histogram.sizes["bin"]
    uniform = 1.0 / bins
    return np.abs(histogram - uniform).sum("bin") / (2 * (1 - uniform))


def _energy(observed: np.ndarray, members: np.ndarray, fair: bool) -> np.ndarray:
    """ES of each batch element: observed (B, V), members (B, M, V) -> (B,), in float64.

    E||X - X'|| goes over rows of members at a time, ENERGY_BUDGET bytes of differences
    (rows x M x V) at most, so memory grows with M, not M^2 (scoringrules' es_ensemble forms
    all M x M x V differences at once: 1 GB for 256 members of a 32 x 64 field).
    """
    batch, count, points = members.shape
    rows = max(1, int(ENERGY_BUDGET // max(1, count * points * 8)))
    scores = np.empty(batch)
    for index in range(batch):
        ensemble = members[index].astype(np.float64)
        error = np.linalg.norm(ensemble - observed[index].astype(np.float64), axis=-1).mean()
        pairs = sum(
            np.linalg.norm(ensemble[start : start + rows, None] - ensemble[None], axis=-1).sum()
            for start in range(0, count, rows)
        )
        scores[index] = error - 0.5 * pairs / (count * (count - 1) if fair else count * count)
    return scores


def energy_score(forecast: xr.Dataset, truth: xr.Dataset) -> xr.Dataset:
    """Latitude-weighted energy score over the field, averaged over inits (module doc):
    forecast (time, member, prediction_timedelta, [level,] lat, lon), truth (time,
    prediction_timedelta, [level,] lat, lon) -> (prediction_timedelta, [level])."""
    results = {}
    for name, field in forecast.data_vars.items():
        weights = latitude_weights(field.latitude)
        scale = np.sqrt(weights / (field.sizes["latitude"] * field.sizes["longitude"]))
        batch = [dim for dim in field.dims if dim not in ("member", *SPATIAL_DIMS)]
        members = (field * scale).transpose(*batch, "member", *SPATIAL_DIMS)
        observed = (truth[name] * scale).transpose(*batch, *SPATIAL_DIMS)
        shape = [field.sizes[dim] for dim in batch]
        points = field.sizes["latitude"] * field.sizes["longitude"]
        scores = _energy(
            observed.values.reshape(-1, points),
            members.values.reshape(-1, field.sizes["member"], points),
            fair=field.sizes["member"] > 1,
        )
        coords = {dim: observed[dim].values for dim in batch if dim in observed.coords}
        scores = xr.DataArray(scores.reshape(shape), dims=batch, coords=coords)
        results[name] = scores.mean("time")
    return xr.Dataset(results).drop_vars("valid_time", errors="ignore")

"""Whether a request for on-request outputs can be served, checked when the workflow is parsed.

Decoding needs the decoder files and a dataset with the decoder's variables on its grid;
render and evaluate also need the ground truth of every state, fields the dataset has, and
periods that make sense. `check_request` opens the dataset (lazily, with xarray) only for a
request that needs it, so that a bad request fails before any job with one line naming the
problem.
"""

import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

if TYPE_CHECKING:
    import xarray as xr

from skyquilt.io.strict_yaml import DuplicateKeyError, load_strict
from skyquilt.models.config import ModelDirectory, ModelError
from skyquilt.planning.dates import label_date
from skyquilt.planning.errors import ConfigError
from skyquilt.planning.products import Field, Products


def _hours(times: np.ndarray) -> str:
    return ", ".join(np.datetime_as_string(np.asarray(times, "datetime64[h]"), unit="h"))


def check_ground_truth(products: Products, dataset_times: np.ndarray, dataset: str) -> None:
    """Every state of every requested trajectory has ground truth in the dataset.

    dataset_times: (N,) datetime64 of the dataset. Raises ConfigError naming the start dates
    whose trajectories leave the dataset and the range that the dataset covers.
    """
    times = np.asarray(dataset_times, dtype="datetime64[ns]")
    dt = np.timedelta64(products.plan.model.blanket_dt, "h")
    bad = []
    for label in products.plan.date_labels:
        start = label_date(label)
        for size in products.plan.sizes:
            valid = start + np.arange(size) * dt
            if not np.isin(valid, times).all():
                bad.append(f"{label} (T = {size})")
                break
    if bad:
        covered = f"{_hours(times[:1])} to {_hours(times[-1:])}" if times.size else "nothing"
        raise ConfigError(
            f"start_dates: no ground truth for the trajectories from {', '.join(bad)} in "
            f"dataset {dataset}, which covers {covered}; render/evaluate need it for every state"
        )


def check_fields(fields: list[Field], dataset: "xr.Dataset", key: str) -> None:
    """Each field's variable and level exist in the dataset."""
    for field in fields:
        if field.variable not in dataset.data_vars:
            raise ConfigError(
                f"{key}: variable {field.variable!r} is not in the dataset; it has "
                f"{', '.join(map(str, dataset.data_vars))}"
            )
        has_level = "level" in dataset[field.variable].dims
        if has_level and field.level not in dataset.level.values.tolist():
            raise ConfigError(
                f"{key}: {field.variable} needs a level from {dataset.level.values.tolist()}; "
                f"got {field.level!r}"
            )
        if not has_level and field.level is not None:
            raise ConfigError(f"{key}: {field.variable} has no levels; leave out 'level'")


def open_dataset(dataset: str) -> "xr.Dataset":
    """The dataset, lazily; ConfigError if it cannot be opened."""
    # Imported here: xarray (with pandas) costs a few tenths of a second, which every parse
    # of the workflow would pay, though only on-request products open the dataset.
    import xarray as xr

    if not os.path.exists(dataset):
        raise ConfigError(f"dataset: {dataset} does not exist; decoding needs its grid and truth")
    try:
        return xr.open_zarr(dataset)
    except Exception as error:  # zarr and xarray raise many types for unreadable stores
        reason = re.sub(r"\s+", " ", str(error))[:200]
        raise ConfigError(f"dataset: {dataset} cannot be opened as zarr ({reason})") from None


def check_coordinates(dataset: "xr.Dataset", path: str, names: Collection[str], use: str) -> None:
    """The dataset has each coordinate of `names` (needed for `use`)."""
    missing = [name for name in names if name not in dataset.variables]
    if missing:
        raise ConfigError(
            f"dataset: {path} has no coordinate {', '.join(missing)}; {use} needs it "
            f"(it has {', '.join(map(str, dataset.coords)) or 'no coordinates'})"
        )


def decoder_outputs(model_path: str) -> tuple[list[str], tuple[int, int] | None]:
    """(variables, (latitudes, longitudes) or None) that the decoder of `model_path` produces.

    Read from the autoencoder's config.yaml in <latent_dir>/ae (`architecture.variables` and
    `architecture.grid`), without torch.
    """
    config_file = ModelDirectory(Path(model_path)).decoder_files()["decoder config"]
    try:
        raw = load_strict(config_file)
    except DuplicateKeyError as error:
        raise ConfigError(f"model_path: decoder config {error}") from None
    except (OSError, yaml.YAMLError) as error:
        reason = re.sub(r"\s+", " ", str(error))[:200]
        raise ConfigError(
            f"model_path: decoder config {config_file} cannot be read ({reason})"
        ) from None
    architecture = raw.get("architecture") if isinstance(raw, dict) else None
    variables = architecture.get("variables") if isinstance(architecture, dict) else None
    if not isinstance(variables, list) or not all(isinstance(name, str) for name in variables):
        raise ConfigError(
            f"model_path: decoder config {config_file} has no list architecture.variables; "
            "it names the dataset variable of each decoded channel"
        )
    grid = architecture.get("grid")
    valid_grid = isinstance(grid, list) and len(grid) == 2
    return variables, (tuple(int(size) for size in grid) if valid_grid else None)


def check_decoder_outputs(
    dataset: "xr.Dataset",
    path: str,
    variables: list[str],
    grid: tuple[int, int] | None,
    truth: bool,
) -> None:
    """The dataset has every variable the decoder produces, on the decoder's grid, with the
    axes that decoding (latitude, longitude, one level at most) and, when `truth`, the
    evaluation against it (time) use."""
    for variable in variables:
        if variable not in dataset.data_vars:
            raise ConfigError(
                f"dataset: {path} lacks variable {variable!r}, which the decoder produces; it "
                f"has {', '.join(map(str, dataset.data_vars)) or 'no variables'}"
            )
        dims = dataset[variable].dims
        needed = ("latitude", "longitude", *(("time",) if truth else ()))
        lacking = [dim for dim in needed if dim not in dims]
        if lacking:
            raise ConfigError(
                f"dataset: {path} has variable {variable!r} without the axis "
                f"{', '.join(lacking)} (it has {', '.join(map(str, dims))}); decoding"
                f"{' and the ground truth' if truth else ''} need it"
            )
        if "level" in dims:
            check_coordinates(dataset, path, ("level",), f"variable {variable!r}")
            if dataset.sizes["level"] != 1:
                raise ConfigError(
                    f"dataset: {path} has {variable!r} at levels {dataset.level.values.tolist()}, "
                    "but the decoder names no level; it needs a dataset with one level"
                )
    shape = (dataset.sizes.get("latitude"), dataset.sizes.get("longitude"))
    if grid is not None and shape != grid:
        raise ConfigError(
            f"dataset: {path} has a {shape[0]} x {shape[1]} (latitude x longitude) grid, but "
            f"the decoder produces {grid[0]} x {grid[1]}"
        )


def _period_bounds(period: tuple[str, str]) -> tuple[np.datetime64, np.datetime64]:
    """[first, after last) of an inclusive period of dates or hours."""
    first, last = (np.datetime64(text, "ns") for text in period)
    step = np.timedelta64(1, "D") if len(period[1]) == 10 else np.timedelta64(1, "h")
    return first, last + step


def check_climatology_period(products: Products) -> None:
    """An explicit climatology period lies outside every evaluated trajectory."""
    if products.climatology_period is None:
        return
    first, after = _period_bounds(products.climatology_period)
    if after <= first:
        raise ConfigError(
            f"evaluate.climatology_period: {list(products.climatology_period)} is reversed"
        )
    dt = np.timedelta64(products.plan.model.blanket_dt, "h")
    longest = max(products.plan.sizes)
    overlapping = [
        label
        for label in products.plan.date_labels
        if label_date(label) < after and label_date(label) + (longest - 1) * dt >= first
    ]
    if overlapping:
        raise ConfigError(
            f"evaluate.climatology_period: {list(products.climatology_period)} overlaps the "
            f"evaluated trajectories from {', '.join(overlapping)}; the baseline must not see "
            "the truth it is scored on"
        )


def check_climate_period(products: Products, dataset_times: np.ndarray | None = None) -> None:
    """An explicit climate period is in order and, when the dataset's times (N,) datetime64
    are given, holds at least two of them."""
    if products.climate_period is None:
        return
    first, after = _period_bounds(products.climate_period)
    if after <= first:
        raise ConfigError(f"evaluate.climate_period: {list(products.climate_period)} is reversed")
    if dataset_times is None:
        return
    times = np.asarray(dataset_times, dtype="datetime64[ns]")
    if np.count_nonzero((times >= first) & (times < after)) < 2:
        covered = f"{_hours(times[:1])} to {_hours(times[-1:])}" if times.size else "nothing"
        raise ConfigError(
            f"evaluate.climate_period: {list(products.climate_period)} holds under two states "
            f"of the dataset, which covers {covered}"
        )


def check_request(products: Products, asked: set[str], built: Collection[str] = ()) -> None:
    """A request for decoded members, renders, evaluations or statistics can be served.

    asked: a subset of {"decoded", "render", "evaluation", "statistics"}; built: model and
    dataset paths that the workflow itself builds (the demo). The decoder and latent
    statistics files must exist, and the dataset, for every request, must have the
    coordinates and every variable the decoder produces (decoding takes its grid, levels and
    units); render and evaluate also need the ground truth of every state in the dataset and
    fields that the dataset has. What the workflow builds is checked once it exists.
    """
    if not asked:
        return
    built = {os.path.normpath(path) for path in built}
    model_path = products.plan.settings.model_path
    if os.path.normpath(model_path) not in built:
        try:
            ModelDirectory(Path(model_path)).check_decoder_files()
        except ModelError as error:
            raise ConfigError(f"model_path: {error}") from None
    if not products.dataset:
        raise ConfigError("dataset: decoding needs the dataset (its grid, levels and units)")
    if "render" in asked and not products.render_fields:
        raise ConfigError(
            "render.fields: list what to render, e.g. [{variable: geopotential, level: 500}]"
        )
    truth = bool(asked & {"render", "evaluation"})
    if truth:
        check_climatology_period(products)
        check_climate_period(products)
        for size in products.plan.sizes:
            if "render" in asked and not products.gallery_lead_hours(size):
                raise ConfigError(
                    f"render.lead_hours: none of {products.lead_hours} is a state of the "
                    f"{size}-state trajectories"
                )
    if os.path.normpath(products.dataset) in built and not os.path.exists(products.dataset):
        return
    dataset = open_dataset(products.dataset)
    coordinates = ("latitude", "longitude", *(("time",) if truth else ()))
    check_coordinates(dataset, products.dataset, coordinates, "evaluation" if truth else "decoding")
    if truth:
        check_ground_truth(products, dataset.time.values, products.dataset)
        check_climate_period(products, dataset.time.values)
        if "render" in asked:
            check_fields(products.render_fields, dataset, "render.fields")
        if products.evaluate_fields is not None:
            check_fields(products.evaluate_fields, dataset, "evaluate.fields")
    decoder_config = ModelDirectory(Path(model_path)).decoder_files()["decoder config"]
    if decoder_config.is_file():  # else the workflow builds it (checked above)
        variables, grid = decoder_outputs(model_path)
        check_decoder_outputs(dataset, products.dataset, variables, grid, truth)

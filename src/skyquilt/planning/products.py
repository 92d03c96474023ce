"""The on-request outputs of a run (decode, render, evaluate): settings, paths and checks.

Decoded members, galleries, animations and evaluations are made only when asked for
(`snakemake render`, `snakemake evaluate` or one of their paths). `make_products` reads the
`decode`, `render` and `evaluate` config sections (already filled with the defaults of
config/schema.report.yaml); the checks run when the workflow is parsed, and only for a request
that needs them, so that a bad request fails before any job with one line naming the problem.

    <prior>/<T>h/decoded/<date>/<member>.zarr
    <prior>/<T>h/render/gallery/<date>/<field>.png
    <prior>/<T>h/render/animation/<date>/<member>/<field>.gif (+ .mp4)
    <prior>/<T>h/evaluation/{metrics.csv, metrics.zarr, scores.png, climate.png, ...}
    <prior>/<T>h/evaluation/{fidelity.csv, fidelity.png}   (`snakemake fidelity`)
    <prior>/<T>h/statistics/<date>.zarr   (`snakemake statistics`: ensemble mean, std, ...)
    <prior>/<T>h/latent_statistics.zarr   (`snakemake latent_statistics`: from the aggregate)
"""

import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

if TYPE_CHECKING:
    import xarray as xr

from skyquilt.io.strict_yaml import DuplicateKeyError, load_strict
from skyquilt.io.video import ffmpeg_available
from skyquilt.models.config import ModelDirectory, ModelError
from skyquilt.planning.config import ConfigError, label_date
from skyquilt.planning.plan import Plan

# Wildcard of a field label: "<variable>" or "<variable>-<level>", e.g. "geopotential-500".
FIELD_WILDCARD = r"[A-Za-z0-9_]+(-[0-9.]+)?"
EVALUATION_FILES = (
    "metrics.csv", "scores.png", "spectra.png", "seams.png", "rank_histogram.png", "climate.png",
)  # fmt: skip
EVALUATION_TABLES = ("spectra.csv", "steps.csv", "climate.csv")
FIDELITY_FILES = ("fidelity.csv", "fidelity.png")
# Defaults of the `statistics` section (config/schema.report.yaml has the same).
STATISTICS_QUANTILES = (0.05, 0.5, 0.95)
STATISTICS_BLOCK_MB = 256


@dataclass(frozen=True)
class Field:
    """A variable, at one level when it has a level axis."""

    variable: str
    level: float | None = None

    @property
    def label(self) -> str:
        """Its name in paths: 'geopotential-500', or the variable alone."""
        return self.variable if self.level is None else f"{self.variable}-{self.level:g}"


def parse_fields(entries: list[dict] | None, key: str) -> list[Field] | None:
    """[{variable, level}, ...] from the config -> Fields (None stays None)."""
    if entries is None:
        return None
    fields = [Field(entry["variable"], entry.get("level")) for entry in entries]
    labels = [field.label for field in fields]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(f"{key}: {', '.join(repeated)} listed more than once")
    return fields


@dataclass(frozen=True)
class Products:
    """Paths and settings of the decode, render and evaluate targets of a plan."""

    plan: Plan
    dataset: str | None
    states_per_chunk: int
    render_fields: list[Field] | None
    lead_hours: list[float]
    quantile: float
    gallery_members: int
    animation_members: int | None
    fps: float
    mp4: bool
    frames_per_job: int | None
    evaluate_fields: list[Field] | None
    climatology_period: tuple[str, str] | None
    climate_period: tuple[str, str] | None = None
    quantiles: tuple[float, ...] = STATISTICS_QUANTILES
    statistics_block_mb: float = STATISTICS_BLOCK_MB

    def size_dir(self, size: int | str) -> str:
        """Everything of trajectory size T = `size` hours."""
        return f"{self.plan.prior_dir}/{size}h"

    def decoded_path(self, size: int | str, label: str, member: int | str) -> str:
        """One decoded member (zarr, WeatherBench2 layout)."""
        return f"{self.size_dir(size)}/decoded/{label}/{member}.zarr"

    def gallery_path(self, size: int | str, label: str, field: str) -> str:
        """The gallery of one field at one start date (PNG)."""
        return f"{self.size_dir(size)}/render/gallery/{label}/{field}.png"

    def animation_path(
        self, size: int | str, label: str, member: int | str, field: str, suffix: str
    ) -> str:
        """The animation of one field of one member, `suffix` "gif" or "mp4"."""
        return f"{self.size_dir(size)}/render/animation/{label}/{member}/{field}.{suffix}"

    def frames_dir(self, size: int | str, label: str, member: int | str, field: str, chunk) -> str:
        """The folder of one frames job's PNG frames, `chunk` its index."""
        return f"{self.size_dir(size)}/render/frames/{label}/{member}/{field}/{chunk}"

    def evaluation_path(self, size: int | str, name: str) -> str:
        """One output `name` of the evaluation (scores, plots)."""
        return f"{self.size_dir(size)}/evaluation/{name}"

    def statistics_path(self, size: int | str, label: str) -> str:
        """The ensemble statistics of one start date (a zarr, one group per statistic)."""
        return f"{self.size_dir(size)}/statistics/{label}.zarr"

    def latent_statistics_path(self, size: int | str) -> str:
        """Latent mean, std and member checksums of one trajectory size (a zarr, no decoding)."""
        return f"{self.size_dir(size)}/latent_statistics.zarr"

    @property
    def animation_suffixes(self) -> list[str]:
        """The animation formats written: GIF always, MP4 too when asked for and ffmpeg exists."""
        return ["gif", "mp4"] if self.mp4 else ["gif"]

    def gallery_member_list(self) -> list[int]:
        """The members shown in a gallery: the first `gallery_members`."""
        return self.plan.members[: self.gallery_members]

    def animated_members(self) -> list[int]:
        """The members animated: the first `animation_members`, all when unset."""
        return self.plan.members[: self.animation_members]

    def frame_chunks(self, size: int | str) -> list[list[int]]:
        """State indices of each frames job of a T-state animation (one job if unset)."""
        count = int(size)
        step = self.frames_per_job or count
        return [list(range(start, min(start + step, count))) for start in range(0, count, step)]

    def gallery_lead_hours(self, size: int | str) -> list[float]:
        """The configured lead hours that are states of a T-state trajectory."""
        dt = self.plan.model.blanket_dt
        last = (int(size) - 1) * dt
        return [hours for hours in self.lead_hours if hours <= last and hours % dt == 0]

    def render_targets(self) -> list[str]:
        """Every gallery and animation of the run."""
        targets = []
        for size in self.plan.sizes:
            for label in self.plan.date_labels:
                for field in self.render_fields or []:
                    targets.append(self.gallery_path(size, label, field.label))
                    for member in self.animated_members():
                        for suffix in self.animation_suffixes:
                            targets.append(
                                self.animation_path(size, label, member, field.label, suffix)
                            )
        return targets

    def evaluate_targets(self) -> list[str]:
        """The metrics, tables and plots of every trajectory size."""
        names = (*EVALUATION_FILES, *EVALUATION_TABLES, "metrics.zarr")
        return [self.evaluation_path(size, name) for size in self.plan.sizes for name in names]

    def fidelity_targets(self) -> list[str]:
        """The composition-fidelity table and plot of every trajectory size."""
        return [
            self.evaluation_path(size, name) for size in self.plan.sizes for name in FIDELITY_FILES
        ]

    def statistics_targets(self) -> list[str]:
        """The ensemble statistics of every trajectory size and start date."""
        return [
            self.statistics_path(size, label)
            for size in self.plan.sizes
            for label in self.plan.date_labels
        ]


def parse_quantiles(values: list[float], key: str = "statistics.quantiles") -> tuple[float, ...]:
    """Quantiles from the config, sorted; ConfigError for one outside (0, 1) or repeated."""
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise ConfigError(f"{key}: {value!r} is not a number strictly between 0 and 1")
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise ConfigError(f"{key}: {', '.join(map(str, repeated))} listed more than once")
    return tuple(sorted(float(value) for value in values))


def make_products(config: dict, plan: Plan) -> Products:
    """Products of a schema-valid config (schema.report.yaml defaults filled in)."""
    render, evaluate = config["render"], config["evaluate"]
    animation = render["animation"]
    period = evaluate.get("climatology_period")
    climate = evaluate.get("climate_period")
    statistics = config.get("statistics") or {}
    return Products(
        plan=plan,
        dataset=config.get("dataset"),
        states_per_chunk=config["decode"]["states_per_chunk"],
        render_fields=parse_fields(render.get("fields"), "render.fields"),
        lead_hours=[float(hours) for hours in render["lead_hours"]],
        quantile=float(render["quantile"]),
        gallery_members=int(render["gallery_members"]),
        animation_members=animation.get("members"),
        fps=float(animation["fps"]),
        mp4=bool(animation["mp4"]) and ffmpeg_available(),
        frames_per_job=animation.get("frames_per_job"),
        evaluate_fields=parse_fields(evaluate.get("fields"), "evaluate.fields"),
        climatology_period=tuple(period) if period else None,
        climate_period=tuple(climate) if climate else None,
        quantiles=parse_quantiles(list(statistics.get("quantiles", STATISTICS_QUANTILES))),
        statistics_block_mb=float(statistics.get("block_mb", STATISTICS_BLOCK_MB)),
    )


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

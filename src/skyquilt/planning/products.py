"""The on-request outputs of a run (decode, render, evaluate, statistics): settings and paths.

Decoded members, galleries, animations, evaluations and statistics are made only when asked
for (`snakemake render`, `snakemake evaluate` or one of their paths). `make_products` reads the
`decode`, `render`, `evaluate` and `statistics` config sections (already filled with the
defaults of config/schema.report.yaml); whether a request can be served is checked by
`planning.dataset_checks`, when the workflow is parsed and only for a request that needs it.

    <prior>/<T>h/decoded/<date>/<member>.zarr
    <prior>/<T>h/render/gallery/<date>/<field>.png
    <prior>/<T>h/render/animation/<date>/<member>/<field>.gif (+ .mp4)
    <prior>/<T>h/evaluation/{metrics.csv, metrics.zarr, scores.png, climate.png, ...}
    <prior>/<T>h/evaluation/{fidelity.csv, fidelity.png}   (`snakemake fidelity`)
    <prior>/<T>h/statistics/<date>.zarr   (`snakemake statistics`: ensemble mean, std, ...)
    <prior>/<T>h/latent_statistics.zarr   (`snakemake latent_statistics`: from the aggregate)
"""

from dataclasses import dataclass

from skyquilt.io.video import ffmpeg_available
from skyquilt.planning.errors import ConfigError
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

"""What the demo rules build and where.

The settings from the `demo:` config section, checked, and the paths of the model directory
layout (docs/model-directory.md, `ModelDirectory.under`) under `resources/demo`.
"""

import dataclasses
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from skyquilt.diffusion.options import check_schedule
from skyquilt.models.blanket_net_options import BlanketNetOptions
from skyquilt.models.config import ModelConfig, ModelDirectory, parse_model_config
from skyquilt.planning.demo_settings import (
    COARSE_DIRECTORY,
    AutoencoderSettings,
    CoarseSettings,
    DatasetSettings,
    DenoiserSettings,
    backbone_kwargs,
    denoiser_config,
    held_out_mask,
    window_starts,
)
from skyquilt.planning.errors import ConfigError
from skyquilt.planning.model import resolve_composition

ROOT = Path("resources/demo")
# The repository's shipped demo weights (skyquilt.demo.pretrained).
SHIPPED = "demo/pretrained"


STEPS = ("dataset", "autoencoder", "denoiser", "coarse")


def pretrained_directory(value: str | bool | None) -> str | None:
    """demo.pretrained: null or true -> the repository's shipped weights, false -> None."""
    if value is False:
        return None
    if value is None or value is True:
        return str(resources.files("skyquilt") / SHIPPED)
    return str(value)


@dataclass(frozen=True)
class DemoPlan:
    """The demo's settings and output paths (relative to the workflow's directory)."""

    dataset: DatasetSettings
    autoencoder: AutoencoderSettings
    denoiser: DenoiserSettings
    coarse: CoarseSettings = CoarseSettings()
    threads: int = 1
    root: Path = ROOT
    pretrained: str | None = None  # the shipped weights' directory; None: always train
    export: str | None = None  # where demo_export writes trained weights

    @property
    def dataset_path(self) -> Path:
        """The simulated dataset (zarr)."""
        return self.root / "era5_demo.zarr"

    @property
    def model_directory(self) -> ModelDirectory:
        """The demo's model directory under `root`: autoencoder `ae`, latent dump `demo`,
        denoiser `denoiser`, lap 0 of each."""
        return ModelDirectory.under(self.root, autoencoder="ae", dump="demo", denoiser="denoiser")

    @property
    def autoencoder_dir(self) -> Path:
        """The trained autoencoder's directory."""
        return self.model_directory.trained_autoencoder_dir

    @property
    def latent_dir(self) -> Path:
        """The dataset's latents and their statistics, encoded by the autoencoder."""
        return self.model_directory.latent_dir

    @property
    def model_path(self) -> Path:
        """The trained denoiser's directory, the workflow's `model_path`."""
        return self.model_directory.model_path

    @property
    def coarse_path(self) -> Path:
        """The coarse model's directory, inside the denoiser's."""
        return self.model_path / COARSE_DIRECTORY

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of the autoencoder's latents."""
        factor = 2**self.autoencoder.downsamplings
        nlat, nlon = self.dataset.grid
        return (self.autoencoder.latent_channels, nlat // factor, nlon // factor)

    def model_config(self) -> ModelConfig:
        """The config of the denoiser the demo trains (declaring its coarse model)."""
        return parse_model_config(denoiser_config(self.denoiser, self.latent_shape, self.coarse))

    def coarse_config(self) -> ModelConfig:
        """The config of the coarse model the demo trains."""
        return parse_model_config(denoiser_config(self.coarse, self.latent_shape))

    def training_settings(self, steps: tuple[str, ...] = STEPS) -> dict[str, dict]:
        """The settings of `steps` (of STEPS) as JSON-ready dicts, without sanity-check keys:
        what shipped weights must have been trained with to be used here."""
        settings = {
            "dataset": dataclasses.asdict(self.dataset),
            "autoencoder": dataclasses.asdict(self.autoencoder),
            **{
                step: {
                    key: value
                    for key, value in dataclasses.asdict(getattr(self, step)).items()
                    if not key.startswith("sanity_")
                }
                for step in ("denoiser", "coarse")
            },
        }
        return json.loads(json.dumps({step: settings[step] for step in steps}))

    def sanity_sampling(self, config: dict) -> dict:
        """How the sanity check samples (skyquilt.demo.sanity.Trajectories): the run's overlap,
        composition (for the demo model), sampler, steps and seed, and the demo's members and
        trajectory size."""
        composition, _ = resolve_composition(config, self.model_config())
        return {
            "composition": composition,
            "members": self.denoiser.sanity_members,
            "size": self.denoiser.sanity_trajectory_size,
            "overlap": int(config["blanket_overlap"]),
            "sampler": config["diffusion"]["sampler"]["type"],
            "steps": config["diffusion"]["num_steps"],
            "seed": int(config["seed"]),
        }

    def built_models(self) -> dict[str, ModelConfig]:
        """{model_path: config} of the models the workflow builds (rules/demo.smk)."""
        built = {str(self.model_path): self.model_config()}
        if self.coarse.enabled:
            built[str(self.coarse_path)] = self.coarse_config()
        return built


def _date(text: str, key: str) -> np.datetime64:
    try:
        return np.datetime64(text, "D")
    except ValueError:
        raise ConfigError(f"{key}: {text!r} is not a date like '2000-04-01'") from None


def make_demo_plan(section: dict) -> DemoPlan:
    """The demo plan of a schema-valid `demo:` section; ConfigError names a key that cannot work."""
    section = section or {}
    dataset = DatasetSettings.from_config(section.get("dataset") or {})
    autoencoder = AutoencoderSettings(**(section.get("autoencoder") or {}))
    denoiser = DenoiserSettings(**(section.get("denoiser") or {}))
    coarse = CoarseSettings(**(section.get("coarse") or {}))

    _date(dataset.start, "demo.dataset.start")
    first, last = (_date(day, "demo.dataset.held_out") for day in dataset.held_out)
    if last < first:
        raise ConfigError(f"demo.dataset.held_out: {list(dataset.held_out)} ends before it starts")
    factor = 2**autoencoder.downsamplings
    if any(size % factor for size in dataset.grid):
        raise ConfigError(
            f"demo.dataset.grid: {list(dataset.grid)} must be divisible by "
            f"2**demo.autoencoder.downsamplings = {factor}"
        )
    held_out = held_out_mask(dataset.times(), dataset.held_out)
    if held_out.all() or not held_out.any():
        raise ConfigError(
            f"demo.dataset.held_out: {list(dataset.held_out)} must cover some but not all of the "
            f"{dataset.days} days from {dataset.start}"
        )
    check_network(denoiser, "demo.denoiser")
    if coarse.enabled:
        check_network(coarse, "demo.coarse")
    for name, mask in (("training", ~held_out), ("held-out", held_out)):
        if not len(window_starts(mask, denoiser.blanket_size)):
            raise ConfigError(
                f"demo.denoiser.blanket_size: {denoiser.blanket_size} consecutive hours do not "
                f"fit in the {name} period of demo.dataset"
            )
    if not len(window_starts(held_out, denoiser.sanity_trajectory_size)):
        raise ConfigError(
            f"demo.denoiser.sanity_trajectory_size: {denoiser.sanity_trajectory_size} "
            "consecutive hours do not fit in the held-out period of demo.dataset"
        )
    check_coarse(coarse, denoiser, held_out)
    return DemoPlan(
        dataset,
        autoencoder,
        denoiser,
        coarse,
        threads=int(section.get("threads", 1)),
        pretrained=pretrained_directory(section.get("pretrained")),
        export=section.get("export"),
    )


def check_network(settings: DenoiserSettings, key: str) -> None:
    """The backbone and schedule of demo.denoiser or demo.coarse (`key`) can be built."""
    if settings.dilations is not None and len(settings.dilations) != settings.blocks:
        raise ConfigError(
            f"{key}.dilations: {list(settings.dilations)} must have one value per block "
            f"({key}.blocks = {settings.blocks})"
        )
    try:
        BlanketNetOptions(**backbone_kwargs(settings))  # checks them as a model config's
        check_schedule(settings.noise_schedule, settings.sigma_min, settings.sigma_max)
    except ValueError as error:
        raise ConfigError(f"{key}: {error}") from None


def check_coarse(coarse: CoarseSettings, denoiser: DenoiserSettings, held_out: np.ndarray) -> None:
    """demo.coarse can be trained and serves the denoiser's blankets: its blocks divide the
    blanket size, its shortest windows are no longer than its longest, and a window of its
    blocks fits in the training and the held-out period."""
    if not coarse.enabled:
        return
    if denoiser.blanket_size % coarse.block:
        raise ConfigError(
            f"demo.coarse.block: {coarse.block} must divide demo.denoiser.blanket_size "
            f"{denoiser.blanket_size}"
        )
    if coarse.min_blanket_size > coarse.blanket_size:
        raise ConfigError(
            f"demo.coarse.min_blanket_size: {coarse.min_blanket_size} must be at most "
            f"demo.coarse.blanket_size {coarse.blanket_size}"
        )
    hours = coarse.blanket_size * coarse.block
    for name, mask in (("training", ~held_out), ("held-out", held_out)):
        if not len(window_starts(mask, hours)):
            raise ConfigError(
                f"demo.coarse.blanket_size: {coarse.blanket_size} blocks of {coarse.block} hours "
                f"do not fit in the {name} period of demo.dataset"
            )

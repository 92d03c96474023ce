"""What the `demo:` config section means: the settings of each demo step, with defaults.

Also the periods the demo models train and evaluate on.

Light on purpose (numpy and dataclasses only): the workflow reads these at parse time.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Forcing:
    """Forcing of the shallow-water model (skyquilt.demo.shallow_water).

    Relaxation, drag and stirring, in SI units unless named otherwise.
    """

    mean_depth: float = 5500.0  # m; g * depth ~ the geopotential of the 500 hPa surface
    jet_contrast: float = 8000.0  # m2 s-2, equator-to-pole difference of phi_eq
    jet_latitude: float = 45.0  # degrees from the thermal equator
    jet_width: float = 10.0  # degrees
    seasonal_shift: float = 0.5  # latitude of the thermal equator / solar declination
    diurnal_amplitude: float = 800.0  # m2 s-2, phi_eq bump under the sun
    relaxation_days: float = 5.0
    drag_days: float = 10.0
    stirring: float = 2e-10  # s-2, rms vorticity source
    stirring_days: float = 1.0  # decorrelation time of the stirring
    stirring_wavenumbers: tuple[float, float] = (0.3, 0.7)  # band, as fractions of the truncation


@dataclass(frozen=True)
class DatasetSettings:
    """What the demo dataset is made of; the keys of the config section `demo.dataset`."""

    start: str = "1999-07-01"
    days: int = 366
    grid: tuple[int, int] = (32, 64)
    spinup_days: int = 20
    held_out: tuple[str, str] = ("2000-04-01", "2000-05-31")
    seed: int = 0
    forcing: Forcing = field(default_factory=Forcing)

    @classmethod
    def from_config(cls, section: dict) -> "DatasetSettings":
        """Settings from the `demo.dataset` config mapping (missing keys take defaults)."""
        section = dict(section)
        forcing = dict(section.pop("forcing", None) or {})
        if "stirring_wavenumbers" in forcing:
            forcing["stirring_wavenumbers"] = tuple(forcing["stirring_wavenumbers"])
        for key in ("grid", "held_out"):
            if key in section:
                section[key] = tuple(section[key])
        return cls(**section, forcing=Forcing(**forcing))

    def times(self) -> np.ndarray:
        """The hourly timestamps (T,) datetime64[ns] of the dataset."""
        start = np.datetime64(self.start, "ns")
        return start + np.arange(24 * self.days) * np.timedelta64(1, "h")


@dataclass(frozen=True)
class AutoencoderSettings:
    """Keys of the config section `demo.autoencoder`."""

    latent_channels: int = 8
    width: int = 32
    downsamplings: int = 2
    resampling: str = "shuffle"
    steps: int = 2000
    batch_size: int = 8
    learning_rate: float = 3e-3
    max_minutes: float = 10.0
    seed: int = 0


@dataclass(frozen=True)
class DenoiserSettings:
    """Keys of the config section `demo.denoiser`."""

    blanket_size: int = 48
    hidden_channels: int = 32
    blocks: int = 5
    embedding: int = 64
    dilations: tuple[int, ...] | None = None
    time_kernel: int = 95
    factorised: bool = True
    time_padding: str = "zeros"
    noise_schedule: str = "rectified"
    sigma_min: float = 1e-3
    sigma_max: float = 1e3
    steps: int = 6000
    batch_size: int = 8
    learning_rate: float = 2e-3
    ema_decay: float = 0.999
    sigma_log_mean: float | None = -0.8
    sigma_log_std: float = 1.8
    max_minutes: float = 90.0
    validation_every: int = 200
    validation_blankets: int = 32
    denoising_steps: int = 32
    sanity_members: int = 8
    sanity_trajectory_size: int = 72
    seed: int = 0


@dataclass(frozen=True)
class CoarseSettings(DenoiserSettings):
    """Keys of the config section `demo.coarse`: the coarse model of two-scale composition.

    A blanket denoiser of block means of `block` hourly latent states, over windows of
    `blanket_size` blocks, trained on windows of `min_blanket_size` to `blanket_size` blocks
    (a short trajectory has few blocks), at noise levels around those where it corrects the
    fine estimate (sigma / sqrt(block), sigma >= 0.3). `enabled: false` builds none.
    """

    enabled: bool = True
    block: int = 8
    blanket_size: int = 48
    min_blanket_size: int = 12
    time_padding: str = "reflect"
    sigma_log_mean: float | None = 1.5
    sigma_log_std: float = 1.8
    steps: int = 3000
    max_minutes: float = 90.0


COARSE_DIRECTORY = "coarse"


def denoiser_config(
    settings: DenoiserSettings,
    latent_shape: tuple[int, int, int],
    coarse: CoarseSettings | None = None,
) -> dict:
    """The model directory's config.yaml (docs/architecture.md) for these settings.

    A CoarseSettings gives the coarse model's: states `block` hours apart, windows of
    `min_blanket_size` to `blanket_size` blocks. `coarse`, when enabled, is declared as the
    model's coarse model, in the directory COARSE_DIRECTORY.
    """
    config = _blanket_config(settings, latent_shape)
    if isinstance(settings, CoarseSettings):
        config["train"] |= {
            "blanket_dt": settings.block,
            "min_blanket_size": settings.min_blanket_size,
        }
    declaration = coarse_declaration(coarse)
    if declaration is not None:
        config["coarse"] = declaration
    return config


def coarse_declaration(coarse: CoarseSettings | None) -> dict | None:
    """The `coarse` section of the denoiser's config.yaml; None without a coarse model."""
    if coarse is None or not coarse.enabled:
        return None
    return {"path": COARSE_DIRECTORY, "block": coarse.block}


def _blanket_config(settings: DenoiserSettings, latent_shape: tuple[int, int, int]) -> dict:
    """The keys of `denoiser_config` that every blanket denoiser has."""
    return {
        "latent_shape": list(latent_shape),
        "backbone": {"name": "blanket_net", "kwargs": backbone_kwargs(settings)},
        "train": {
            "blanket_size": settings.blanket_size,
            "blanket_dt": 1,
            "noise_schedule": settings.noise_schedule,
            "sigma_min": settings.sigma_min,
            "sigma_max": settings.sigma_max,
            "precision": "float32",
            "steps": settings.steps,
            "batch_size": settings.batch_size,
            "learning_rate": settings.learning_rate,
            "ema_decay": settings.ema_decay,
            "sigma_log_mean": settings.sigma_log_mean,
            "sigma_log_std": settings.sigma_log_std,
            "max_minutes": settings.max_minutes,
            "seed": settings.seed,
        },
        "valid": {
            "denoising_steps": settings.denoising_steps,
            "every": settings.validation_every,
            "blankets": settings.validation_blankets,
        },
    }


def backbone_kwargs(settings: DenoiserSettings) -> dict:
    """The `backbone.kwargs` of the blanket_net these settings build (BlanketNetOptions)."""
    return (
        {
            "hidden_channels": settings.hidden_channels,
            "blocks": settings.blocks,
            "embedding": settings.embedding,
        }
        | ({"dilations": list(settings.dilations)} if settings.dilations else {})
        | ({"time_kernel": settings.time_kernel} if settings.time_kernel else {})
        | ({"factorised": True} if settings.factorised else {})
        | ({"time_padding": settings.time_padding} if settings.time_padding != "zeros" else {})
    )


def held_out_mask(times: np.ndarray, held_out: tuple[str, str]) -> np.ndarray:
    """times (T,) -> (T,) bool, True inside the held-out period (both dates inclusive)."""
    first = np.datetime64(held_out[0], "ns")
    after_last = np.datetime64(held_out[1], "D") + np.timedelta64(1, "D")
    times = np.asarray(times, dtype="datetime64[ns]")
    return (times >= first) & (times < after_last.astype("datetime64[ns]"))


def window_starts(mask: np.ndarray, blanket_size: int) -> np.ndarray:
    """First indices s of every window mask[s : s + K] that is all True: mask (T,) -> (N,)."""
    inside = np.lib.stride_tricks.sliding_window_view(np.asarray(mask, bool), blanket_size)
    return np.flatnonzero(inside.all(axis=1))


def stats_path(dataset_path: Path | str) -> Path:
    """The normalisation statistics beside a dataset: `x.zarr` -> `x.stats.json`."""
    dataset_path = Path(dataset_path)
    return dataset_path.with_name(f"{dataset_path.stem}.stats.json")

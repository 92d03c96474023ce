"""Model configs and directory paths, read without importing torch.

The workflow checks `model_path` and the denoiser's config.yaml when it is parsed; this
module keeps those checks free of torch's import time. Loading weights lives in
`skyquilt.models.weights`.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from skyquilt.io.strict_yaml import DuplicateKeyError, load_strict

TARGETS = ("best", "last")
PRECISIONS = ("float32", "float16", "bfloat16")
REQUIRED_KEYS = (
    "latent_shape",
    "backbone.name",
    "train.blanket_size",
    "train.blanket_dt",
    "train.noise_schedule",
    "train.sigma_min",
    "train.sigma_max",
    "train.precision",
    "valid.denoising_steps",
)


class ModelError(ValueError):
    """A model directory, config or checkpoint that cannot be used; the message names the file."""


@dataclass(frozen=True)
class CoarseDeclaration:
    """A model's coarse model, for two-scale composition: config.yaml's `coarse` section.

    path: its model directory (config.yaml, best/last weights), relative to the model's.
    block: m, the states whose mean is one coarse state.
    """

    path: str
    block: int


@dataclass(frozen=True)
class ModelConfig:
    """The parts of a denoiser's config.yaml that generation needs.

    min_blanket_size: the shortest windows the model was trained on (`train.min_blanket_size`,
    by default `blanket_size`); a coarse model scores windows of any size in between.
    coarse: the model's coarse model (`coarse`), None when it has none.
    """

    latent_shape: tuple[int, int, int]
    blanket_size: int
    blanket_dt: int
    noise_schedule: str
    sigma_min: float
    sigma_max: float
    precision: str
    denoising_steps: int
    backbone: str
    backbone_kwargs: dict = field(default_factory=dict)
    min_blanket_size: int | None = None
    coarse: CoarseDeclaration | None = None


@dataclass(frozen=True)
class ModelDirectory:
    """Paths of a model directory, from `model_path` = <latent_dir>/denoisers/<name>/<lap>.

    <root>/autoencoders/<ae>/<lap>/                  the autoencoder as trained
    <root>/autoencoders/<ae>/<lap>/latents/<dump>/   latent_dir: stats, ae/, latents.zarr
    <latent_dir>/denoisers/<denoiser>/<lap>/         model_path: config.yaml, weights
    """

    model_path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_path", Path(self.model_path))

    @classmethod
    def under(
        cls,
        root: Path | str,
        autoencoder: str,
        dump: str,
        denoiser: str,
        autoencoder_lap: int = 0,
        denoiser_lap: int = 0,
    ) -> "ModelDirectory":
        """The model directory of the denoiser `denoiser` trained on the latents `dump` of
        the autoencoder `autoencoder`, under `root`."""
        autoencoder_dir = Path(root) / "autoencoders" / autoencoder / str(autoencoder_lap)
        latent_dir = autoencoder_dir / "latents" / dump
        return cls(latent_dir / "denoisers" / denoiser / str(denoiser_lap))

    @property
    def latent_dir(self) -> Path:
        """<latent_dir>, three levels above `model_path`."""
        return self.model_path.parents[2]

    @property
    def trained_autoencoder_dir(self) -> Path:
        """<root>/autoencoders/<ae>/<lap>, the autoencoder as trained, two levels above
        <latent_dir>."""
        return self.latent_dir.parents[1]

    @property
    def config_file(self) -> Path:
        """The denoiser's config.yaml."""
        return self.model_path / "config.yaml"

    @property
    def stats_file(self) -> Path:
        """The latent statistics, <latent_dir>/stats.safetensors: mean and std, (C, h, w) each."""
        return self.latent_dir / "stats.safetensors"

    @property
    def autoencoder_dir(self) -> Path:
        """The autoencoder whose latents the denoiser models, <latent_dir>/ae."""
        return self.latent_dir / "ae"

    def decoder_files(self) -> dict[str, Path]:
        """Every file decoding reads: {description: path}.

        The autoencoder files are those of the built-in autoencoder
        (`skyquilt.models.autoencoder`), the only architecture so far.
        """
        return {
            "decoder config": self.autoencoder_dir / "config.yaml",
            "decoder weights": self.autoencoder_dir / "weights.safetensors",
            "latent statistics": self.stats_file,
        }

    def check_decoder_files(self) -> None:
        """Raise ModelError naming the first decoder file that is missing."""
        for description, path in self.decoder_files().items():
            if not path.is_file():
                raise ModelError(
                    f"the {description} file {path} is missing; decoding needs the "
                    "autoencoder in <latent_dir>/ae and the latent statistics beside it"
                )

    def denoiser_files(
        self, target: str, composition: str = "blankets", model: "ModelConfig | None" = None
    ) -> list[Path]:
        """What sampling reads: the denoiser's config.yaml and its `target` weights, and its
        coarse model's config.yaml and `target` weights when the member composes two_scale.
        `model`: the config.yaml's content, when already read (or not written yet: the demo's
        models are built by the workflow)."""
        files = [self.config_file, self.weights_file(target)]
        if composition == "two_scale":
            model = model or read_model_config(self.config_file)
            coarse = ModelDirectory(self.coarse_path(model))
            files += [coarse.config_file, coarse.weights_file(target)]
        return files

    def coarse_path(self, model: "ModelConfig") -> Path | None:
        """The model directory of the model's coarse model, None when it declares none."""
        return None if model.coarse is None else self.model_path / model.coarse.path

    def weights_file(self, target: str) -> Path:
        """best/last weights: `<target>.safetensors`, else a `<target>.pt` state dict."""
        safetensors_file = self.model_path / f"{target}.safetensors"
        torch_file = self.model_path / f"{target}.pt"
        return (
            torch_file
            if torch_file.exists() and not safetensors_file.exists()
            else safetensors_file
        )


def _lookup(raw: dict, dotted: str) -> Any:
    """raw["a"]["b"] for dotted = "a.b"; KeyError(dotted) when any part is missing."""
    value = raw
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value


def read_model_config(config_file: Path) -> ModelConfig:
    """Parse a denoiser config.yaml, naming the file and key of anything missing or wrong."""
    config_file = Path(config_file)
    try:
        raw = load_strict(config_file)
    except DuplicateKeyError as error:
        raise ModelError(f"model config {error}") from None
    except (OSError, yaml.YAMLError) as error:
        raise ModelError(f"model config {config_file} cannot be read: {error}") from error
    return parse_model_config(raw, config_file)


def parse_model_config(raw: object, config_file: Path | str = "<memory>") -> ModelConfig:
    """A ModelConfig from a parsed config mapping; errors name `config_file` and the key."""
    if not isinstance(raw, dict):
        raise ModelError(f"model config {config_file} is not a mapping")
    values = {}
    for key in REQUIRED_KEYS:
        try:
            values[key] = _lookup(raw, key)
        except KeyError:
            raise ModelError(f"model config {config_file} lacks required key '{key}'") from None
    try:
        config = ModelConfig(
            latent_shape=tuple(int(size) for size in values["latent_shape"]),
            blanket_size=int(values["train.blanket_size"]),
            blanket_dt=int(values["train.blanket_dt"]),
            noise_schedule=str(values["train.noise_schedule"]),
            sigma_min=float(values["train.sigma_min"]),
            sigma_max=float(values["train.sigma_max"]),
            precision=str(values["train.precision"]),
            denoising_steps=int(values["valid.denoising_steps"]),
            backbone=str(values["backbone.name"]),
            backbone_kwargs=dict(raw["backbone"].get("kwargs") or {}),
            min_blanket_size=int(
                raw["train"].get("min_blanket_size", values["train.blanket_size"])
            ),
            coarse=_coarse_declaration(raw.get("coarse"), config_file),
        )
    except (TypeError, ValueError) as error:
        raise ModelError(f"model config {config_file} has a malformed value: {error}") from error
    if len(config.latent_shape) != 3 or min(config.latent_shape) < 1:
        raise ModelError(f"model config {config_file}: 'latent_shape' must be [C, H, W]")
    if config.blanket_size < 1 or config.blanket_dt < 1:
        raise ModelError(
            f"model config {config_file}: 'train.blanket_size' and 'train.blanket_dt' must be >= 1"
        )
    if not 1 <= config.min_blanket_size <= config.blanket_size:
        raise ModelError(
            f"model config {config_file}: 'train.min_blanket_size' must be in "
            f"[1, {config.blanket_size}]"
        )
    if config.precision not in PRECISIONS:
        raise ModelError(
            f"model config {config_file}: 'train.precision' is {config.precision!r}; "
            f"allowed: {', '.join(PRECISIONS)}"
        )
    return config


def _coarse_declaration(section: object, config_file: Path | str) -> CoarseDeclaration | None:
    """config.yaml's `coarse` section: {path: <directory>, block: <m >= 2>}, or None."""
    if section is None:
        return None
    if not isinstance(section, dict) or set(section) != {"path", "block"}:
        raise ModelError(
            f"model config {config_file}: 'coarse' must be a mapping with the keys path (the "
            "coarse model's directory, relative to the model's) and block (states per block)"
        )
    path, block = section["path"], section["block"]
    if (
        not isinstance(path, str)
        or not path
        or Path(path).is_absolute()
        or ".." in Path(path).parts
    ):
        raise ModelError(
            f"model config {config_file}: 'coarse.path' must be a directory inside the model's, "
            f"got {path!r}"
        )
    if isinstance(block, bool) or not isinstance(block, int) or block < 2:
        raise ModelError(f"model config {config_file}: 'coarse.block' must be an integer >= 2")
    return CoarseDeclaration(path, block)

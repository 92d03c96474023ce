"""Shipped demo weights: used when they were trained on this very dataset with these settings.

Training a demo model that samples weather with the right statistics takes longer than a
laptop demo should, so the repository ships the trained weights (`make demo-train` rebuilds
them from scratch). A shipped directory holds

    fingerprint.json               the dataset's fingerprint and the settings of every step
    autoencoder/                   config.yaml, weights.safetensors, metrics.json
    denoiser/                      config.yaml, best.safetensors, last.safetensors, train_log.csv
    coarse/                        the denoiser's coarse model: the same files

The demo's autoencoder and denoiser jobs install them instead of training only when the
dataset built on this machine has the same fingerprint (a hash of its values and times: the
simulation is deterministic, so a different machine or library that changes its arithmetic
changes the fingerprint) and the settings of every step up to that one are those the weights
were trained with. Otherwise they train, and say why.
"""

import hashlib
import json
import shutil
from pathlib import Path
from typing import TextIO

import numpy as np
import xarray as xr

from skyquilt.io.atomic import copy_file, write_json

FINGERPRINT_FILE = "fingerprint.json"
PARTS = {
    "autoencoder": ("config.yaml", "weights.safetensors", "metrics.json"),
    "denoiser": ("config.yaml", "best.safetensors", "last.safetensors", "train_log.csv"),
    "coarse": ("config.yaml", "best.safetensors", "last.safetensors", "train_log.csv"),
}
# How the log names a part, where its directory's name does not say it.
NAMES = {"coarse": "coarse model"}
# The steps whose settings a part depends on: the denoiser and its coarse model are trained on
# the autoencoder's latents, so they depend on both. (Which coarse model the denoiser's
# config.yaml declares is written when it is installed: `declare_coarse`.)
DEPENDS = {
    "autoencoder": ("dataset", "autoencoder"),
    "denoiser": ("dataset", "autoencoder", "denoiser"),
    "coarse": ("dataset", "autoencoder", "coarse"),
}


def dataset_fingerprint(dataset_path: Path | str) -> str:
    """sha256 of the dataset's times and of every variable's values, in name order."""
    dataset = xr.open_zarr(dataset_path)
    digest = hashlib.sha256(np.ascontiguousarray(dataset.time.values).tobytes())
    for name in sorted(dataset.data_vars):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(dataset[name].values).tobytes())
    return digest.hexdigest()


def unusable_reason(
    shipped: Path | str | None, part: str, fingerprint: str, settings: dict[str, dict]
) -> str | None:
    """Why the shipped `part` cannot be used here, or None when it can.

    Arguments:
        shipped: the shipped weights' directory; None when the config says to train.
        part: "autoencoder", "denoiser" or "coarse".
        fingerprint: the dataset's, see `dataset_fingerprint`.
        settings: the demo's settings of the steps in DEPENDS[part]
            (skyquilt.planning.demo.DemoPlan.training_settings).
    """
    if shipped is None:
        return "demo.pretrained is false"
    shipped = Path(shipped)
    record_file = shipped / FINGERPRINT_FILE
    if not record_file.is_file():
        return f"no shipped weights in {shipped}"
    record = json.loads(record_file.read_text())
    if record["dataset"] != fingerprint:
        return (
            f"the dataset built here (fingerprint {fingerprint[:12]}) differs from the one the "
            f"shipped weights were trained on ({record['dataset'][:12]})"
        )
    missing = [name for name in PARTS[part] if not (shipped / part / name).is_file()]
    if missing:
        return f"{shipped / part} lacks {', '.join(missing)}"
    for step in DEPENDS[part]:
        if record["settings"].get(step) != settings[step]:
            return f"the demo.{step} settings are not those the shipped weights were trained with"
    return None


def same_autoencoder(shipped: Path | str, weights_file: Path | str) -> bool:
    """Whether `weights_file` holds exactly the shipped autoencoder's weights."""
    shipped_file = Path(shipped) / "autoencoder" / "weights.safetensors"
    return shipped_file.is_file() and shipped_file.read_bytes() == Path(weights_file).read_bytes()


def install(shipped: Path | str, part: str, directory: Path | str) -> None:
    """Copy the shipped `part`'s files into `directory` (each atomically)."""
    for name in PARTS[part]:
        copy_file(Path(shipped) / part / name, Path(directory) / name)


def install_if_usable(
    shipped: Path | str | None,
    part: str,
    dataset_path: Path | str,
    settings: dict[str, dict],
    directory: Path | str,
    log: TextIO,
    autoencoder_weights: Path | str | None = None,
) -> bool:
    """Install the shipped `part` into `directory` when it can be used here; say which in `log`.

    Arguments:
        shipped, part, settings: see `unusable_reason`.
        dataset_path: the dataset built here.
        directory: where the part's files go.
        log: the job's log.
        autoencoder_weights: for the denoiser and the coarse model, the weights of the
            autoencoder whose latents they would denoise; they must be the shipped
            autoencoder's.

    Returns:
        True when installed; False when the part must be trained (the log says why).
    """
    reason = unusable_reason(shipped, part, dataset_fingerprint(dataset_path), settings)
    if (
        reason is None
        and autoencoder_weights
        and not same_autoencoder(shipped, autoencoder_weights)
    ):
        reason = "the autoencoder in use is not the shipped one"
    if reason is not None:
        print(f"training the {NAMES.get(part, part)}: {reason}", file=log)
        return False
    install(shipped, part, directory)
    name = NAMES.get(part, part)
    print(f"installed the shipped {name} of {shipped}: same dataset, same settings", file=log)
    return True


def export(
    directories: dict[str, Path | str],
    fingerprint: str,
    settings: dict[str, dict],
    destination: Path | str,
) -> None:
    """Write trained parts ({part: its directory}) and their fingerprint to `destination`.

    The previous contents of `destination` are replaced; the fingerprint is written last, so
    an interrupted export is never taken for a complete one.
    """
    destination = Path(destination)
    (destination / FINGERPRINT_FILE).unlink(missing_ok=True)
    for part, directory in directories.items():
        shutil.rmtree(destination / part, ignore_errors=True)
        install_from = Path(directory)
        for name in PARTS[part]:
            copy_file(install_from / name, destination / part / name)
    write_json({"dataset": fingerprint, "settings": settings}, destination / FINGERPRINT_FILE)

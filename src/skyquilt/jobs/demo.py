"""The jobs of the embedded demo's rules (rules/demo.smk): dataset, autoencoder, latent dump,
denoiser, sanity check and the export of trained weights.

The autoencoder and the denoiser are installed from the shipped weights when those were trained
on this very dataset with these settings (skyquilt.demo.pretrained), else trained here. Each job
writes a summary to its rule's log (`log`); progress bars go to the console.
"""

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import torch

from skyquilt.demo.dataset import simulate_dataset, write_dataset
from skyquilt.demo.latents import dump_latents
from skyquilt.demo.pretrained import dataset_fingerprint, export, install_if_usable
from skyquilt.demo.sanity import Trajectories, sanity_check
from skyquilt.demo.train_autoencoder import METRICS_FILE, make_autoencoder
from skyquilt.demo.train_denoiser import declare_coarse, make_denoiser
from skyquilt.io.atomic import atomic_file, write_json
from skyquilt.planning.demo_settings import (
    AutoencoderSettings,
    CoarseSettings,
    DatasetSettings,
    DenoiserSettings,
)


def run_demo_dataset(settings: dict, output: str, threads: int, log: TextIO) -> None:
    """Simulate the demo dataset (`demo.dataset` settings) and write it, with its
    normalisation statistics beside it, to `output`."""
    settings = DatasetSettings.from_config(settings)
    torch.set_num_threads(threads)
    start = time.monotonic()
    print(f"settings: {settings}", file=log)
    dataset = simulate_dataset(settings, progress=True)
    write_dataset(dataset, output, settings.held_out)
    print(f"states: {dataset.sizes['time']}, wall time: {time.monotonic() - start:.1f} s", file=log)


def install_or_train(
    part: str,
    pretrained: str | None,
    dataset: str,
    training: dict[str, dict],
    directory: Path,
    log: TextIO,
    train: Callable[[], dict],
    autoencoder_weights: str | None = None,
) -> dict | None:
    """Install the shipped `part` ("autoencoder" or "denoiser") into `directory` when it can
    be used here (`install_if_usable`, which says why not in `log`), else call `train`.

    Returns:
        What `train` returned, or None when the shipped weights were installed.
    """
    installed = install_if_usable(
        pretrained, part, dataset, training, directory, log, autoencoder_weights=autoencoder_weights
    )
    return None if installed else train()


def run_demo_autoencoder(
    dataset: str,
    config_file: str,
    settings: dict,
    held_out: list[str],
    pretrained: str | None,
    training: dict[str, dict],
    threads: int,
    log: TextIO,
) -> None:
    """The demo autoencoder in the directory of `config_file`, shipped or trained on
    `dataset` (`demo.autoencoder` settings); its held-out metrics go to `log`."""
    torch.set_num_threads(threads)
    directory = Path(config_file).parent
    metrics = install_or_train(
        "autoencoder", pretrained, dataset, training, directory, log,
        train=lambda: make_autoencoder(
            dataset_path=dataset,
            directory=directory,
            settings=AutoencoderSettings(**settings),
            held_out=tuple(held_out),
            progress=True,
        ),
    )  # fmt: skip
    if metrics is None:
        metrics = json.loads((directory / METRICS_FILE).read_text())
    print(json.dumps(metrics, indent=2), file=log)


def run_demo_latents(
    dataset: str,
    autoencoder_config: str,
    stats: str,
    held_out: list[str],
    threads: int,
    log: TextIO,
) -> None:
    """Encode every state of `dataset` into the latent directory of `stats` (the latent
    dump, its statistics and a copy of the autoencoder)."""
    torch.set_num_threads(threads)
    mean, std = dump_latents(
        dataset_path=dataset,
        autoencoder_dir=Path(autoencoder_config).parent,
        latent_dir=Path(stats).parent,
        held_out=tuple(held_out),
        progress=True,
    )
    print(f"latent shape {tuple(mean.shape)}", file=log)
    print(
        f"latent mean: mean {mean.mean():.4f}, std: min {std.min():.4f} max {std.max():.4f}",
        file=log,
    )


def run_demo_denoiser(
    dataset: str,
    config_file: str,
    stats: str,
    autoencoder_weights: str,
    part: str,
    coarse: dict,
    held_out: list[str],
    pretrained: str | None,
    training: dict[str, dict],
    threads: int,
    log: TextIO,
    settings: dict | None = None,
) -> None:
    """The demo denoiser (`part` "denoiser", `demo.denoiser` settings) or its coarse model
    (`part` "coarse", `demo.coarse` settings) in the directory of `config_file`, shipped or
    trained on the latents beside `stats`. The denoiser's config.yaml declares the coarse
    model of `coarse` (demo.coarse: whether there is one, and its block); the coarse model's
    declares none."""
    torch.set_num_threads(threads)
    model_path = Path(config_file).parent
    declared = CoarseSettings(**coarse)
    if part == "coarse":
        trained, declared = declared, None
    else:
        trained = DenoiserSettings(**settings)
    summary = install_or_train(
        part, pretrained, dataset, training, model_path, log,
        train=lambda: make_denoiser(
            latent_dir=Path(stats).parent,
            model_path=model_path,
            settings=trained,
            held_out=tuple(held_out),
            progress=True,
            coarse=declared,
        ),
        autoencoder_weights=autoencoder_weights,
    )  # fmt: skip
    if summary is not None:
        print(json.dumps({"training": summary}, indent=2), file=log)
    if part == "denoiser":
        declare_coarse(model_path, declared)


def run_demo_sanity(
    config_file: str,
    dataset: str,
    held_out: list[str],
    sampling: dict,
    outputs: dict[str, str],
    threads: int,
    log: TextIO,
) -> None:
    """Judge the demo model of `config_file` (`skyquilt.demo.sanity`) and write
    outputs["sanity"] (JSON) and outputs["table"] (CSV); every missed target is a warning in
    `log` and on stderr (the console)."""
    torch.set_num_threads(threads)
    report, rows = sanity_check(
        config_file.rsplit("/", 1)[0], dataset, tuple(held_out), Trajectories(**sampling)
    )
    with atomic_file(outputs["table"]) as temporary:
        rows.to_csv(temporary, index=False)
    write_json(report, outputs["sanity"])
    print(json.dumps(report, indent=2), file=log)
    if report["passed"]:
        print("the demo model meets every target", file=log)
    for line in report["misses"]:
        for stream in (log, sys.stderr):
            print(f"WARNING: the demo model misses a target: {line}", file=stream)


def run_demo_export(
    dataset: str,
    fingerprint_file: str,
    directories: dict[str, Path],
    training: dict[str, dict],
    log: TextIO,
) -> None:
    """Write the trained weights of `directories` ({"autoencoder": ..., "denoiser": ...,
    "coarse": ...}),
    the fingerprint of `dataset` and the `training` settings to the directory of
    `fingerprint_file` (demo.export)."""
    fingerprint = dataset_fingerprint(dataset)
    destination = Path(fingerprint_file).parent
    export(directories, fingerprint, training, destination)
    print(f"exported the demo weights to {destination} (dataset {fingerprint})", file=log)

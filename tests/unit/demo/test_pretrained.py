"""Shipped demo weights: the dataset fingerprint and when shipped weights may be used."""

import io
import json

import numpy as np
import pytest
import xarray as xr

from skyquilt.demo.pretrained import (
    FINGERPRINT_FILE,
    PARTS,
    dataset_fingerprint,
    export,
    install,
    install_if_usable,
    unusable_reason,
)

SETTINGS = {
    "dataset": {"seed": 0},
    "autoencoder": {"steps": 3},
    "denoiser": {"steps": 5},
    "coarse": {"steps": 7},
}


def write_dataset(path, values, hours=4):
    times = np.datetime64("2000-01-01T00", "ns") + np.arange(hours) * np.timedelta64(1, "h")
    dataset = xr.Dataset(
        {"geopotential": (("time", "latitude"), values)},
        coords={"time": times, "latitude": [10.0, -10.0]},
    )
    dataset.to_zarr(path, mode="w", zarr_format=2)
    return path


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "data.zarr", np.arange(8.0).reshape(4, 2))


@pytest.fixture
def shipped(tmp_path, dataset):
    """An export of two parts made of small files, for the fixture's dataset."""
    parts = {}
    for part, names in PARTS.items():
        parts[part] = tmp_path / "trained" / part
        parts[part].mkdir(parents=True)
        for name in names:
            (parts[part] / name).write_text(f"{part} {name}")
    export(parts, dataset_fingerprint(dataset), SETTINGS, tmp_path / "shipped")
    return tmp_path / "shipped"


def test_fingerprint_changes_with_any_value_or_time(tmp_path, dataset):
    reference = dataset_fingerprint(dataset)
    assert dataset_fingerprint(dataset) == reference  # read again: the same
    values = np.arange(8.0).reshape(4, 2)
    values[3, 1] = np.nextafter(values[3, 1], 10)
    assert dataset_fingerprint(write_dataset(tmp_path / "value.zarr", values)) != reference
    longer = write_dataset(tmp_path / "time.zarr", np.arange(10.0).reshape(5, 2), hours=5)
    assert dataset_fingerprint(longer) != reference


def test_export_then_install_copies_every_file(shipped, dataset, tmp_path):
    assert json.loads((shipped / FINGERPRINT_FILE).read_text()) == {
        "dataset": dataset_fingerprint(dataset),
        "settings": SETTINGS,
    }
    install(shipped, "denoiser", tmp_path / "model")
    for name in PARTS["denoiser"]:
        assert (tmp_path / "model" / name).read_text() == f"denoiser {name}"


def test_shipped_weights_are_usable_only_for_the_same_dataset_and_settings(shipped, dataset):
    fingerprint = dataset_fingerprint(dataset)
    assert unusable_reason(shipped, "denoiser", fingerprint, SETTINGS) is None
    assert unusable_reason(None, "denoiser", fingerprint, SETTINGS) == "demo.pretrained is false"
    assert unusable_reason(shipped / "elsewhere", "autoencoder", fingerprint, SETTINGS) == (
        f"no shipped weights in {shipped / 'elsewhere'}"
    )
    other = "0" * 64
    assert unusable_reason(shipped, "autoencoder", other, SETTINGS) == (
        f"the dataset built here (fingerprint {other[:12]}) differs from the one the shipped "
        f"weights were trained on ({fingerprint[:12]})"
    )
    changed = {**SETTINGS, "denoiser": {"steps": 6}}
    # The autoencoder does not depend on the denoiser's settings; the denoiser does.
    assert unusable_reason(shipped, "autoencoder", fingerprint, changed) is None
    assert unusable_reason(shipped, "denoiser", fingerprint, changed) == (
        "the demo.denoiser settings are not those the shipped weights were trained with"
    )
    (shipped / "denoiser" / "best.safetensors").unlink()
    assert unusable_reason(shipped, "denoiser", fingerprint, SETTINGS) == (
        f"{shipped / 'denoiser'} lacks best.safetensors"
    )


def test_weights_shipped_without_a_coarse_model_serve_the_rest(dataset, tmp_path):
    """An export made before the coarse model existed: the autoencoder and the denoiser are
    still usable; the coarse model is trained, and the log says why."""
    parts = {}
    for part in ("autoencoder", "denoiser"):
        parts[part] = tmp_path / "trained" / part
        parts[part].mkdir(parents=True)
        for name in PARTS[part]:
            (parts[part] / name).write_text(f"{part} {name}")
    older = {key: value for key, value in SETTINGS.items() if key != "coarse"}
    export(parts, dataset_fingerprint(dataset), older, tmp_path / "shipped")
    shipped, fingerprint = tmp_path / "shipped", dataset_fingerprint(dataset)
    assert unusable_reason(shipped, "denoiser", fingerprint, SETTINGS) is None
    log = io.StringIO()
    assert not install_if_usable(shipped, "coarse", dataset, SETTINGS, tmp_path / "coarse", log)
    assert f"training the coarse model: {shipped / 'coarse'} lacks config.yaml" in log.getvalue()


def test_a_new_export_replaces_the_previous_one(shipped, dataset, tmp_path):
    (shipped / "denoiser" / "stale.txt").write_text("from an older export")
    parts = {part: tmp_path / "trained" / part for part in PARTS}
    export(parts, "f" * 64, SETTINGS, shipped)
    assert not (shipped / "denoiser" / "stale.txt").exists()
    assert json.loads((shipped / FINGERPRINT_FILE).read_text())["dataset"] == "f" * 64


def test_a_denoiser_is_installed_only_over_the_shipped_autoencoder(shipped, dataset, tmp_path):
    """Its latents come from the autoencoder: another one (trained here) means training."""
    log = io.StringIO()
    other = tmp_path / "other.safetensors"
    other.write_text("autoencoder trained here")
    model = tmp_path / "model"
    assert not install_if_usable(shipped, "denoiser", dataset, SETTINGS, model, log, other)
    assert "training the denoiser: the autoencoder in use is not the shipped one" in log.getvalue()
    assert not model.exists()
    ours = shipped / "autoencoder" / "weights.safetensors"
    assert install_if_usable(shipped, "denoiser", dataset, SETTINGS, model, log, ours)
    assert f"installed the shipped denoiser of {shipped}" in log.getvalue()
    assert (model / "best.safetensors").read_text() == "denoiser best.safetensors"

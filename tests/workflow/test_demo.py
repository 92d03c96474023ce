"""End to end: the whole demo DAG (dataset -> autoencoder -> latents -> denoiser -> generation
-> aggregate) through the real snakemake, with tiny settings."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from skyquilt_testing.workflow import (
    DEMO,
    MODEL,
    planned_jobs,
    run_snakemake,
    tiny_demo_config,
    write_config,
)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The default config with tiny demo settings, run once in a fresh directory, training
    from scratch and exporting the weights (what `make demo-train` does) to ../shipped."""
    workdir = tmp_path_factory.mktemp("demo")
    shipped = workdir.parent / "shipped"
    config = tiny_demo_config()
    config["demo"] = {**config["demo"], "pretrained": False, "export": str(shipped)}
    write_config(workdir, config)
    run_snakemake(workdir, "--cores", "2", "all", "demo_export")
    return workdir


def run_with_shipped(workdir, shipped, denoiser=None):
    """A fresh tiny demo run that may use the weights shipped in `shipped`."""
    config = tiny_demo_config()
    config["demo"] = {**config["demo"], "pretrained": str(shipped)}
    config["demo"]["denoiser"] = {**config["demo"]["denoiser"], **(denoiser or {})}
    write_config(workdir, config)
    run_snakemake(workdir, "--cores", "2")
    return workdir


def same_bytes(first, second) -> bool:
    return first.read_bytes() == second.read_bytes()


def test_the_export_holds_the_trained_weights_and_the_dataset_fingerprint(demo_run):
    shipped = demo_run.parent / "shipped"
    model, autoencoder = demo_run / MODEL, demo_run / DEMO / "autoencoders/ae/0"
    for name in ("config.yaml", "weights.safetensors", "metrics.json"):
        assert same_bytes(shipped / "autoencoder" / name, autoencoder / name)
    for name in ("config.yaml", "best.safetensors", "last.safetensors", "train_log.csv"):
        assert same_bytes(shipped / "denoiser" / name, model / name)
        assert same_bytes(shipped / "coarse" / name, model / "coarse" / name)
    record = json.loads((shipped / "fingerprint.json").read_text())
    assert len(record["dataset"]) == 64
    assert record["settings"]["denoiser"]["steps"] == 20
    assert record["settings"]["coarse"]["block"] == 2
    assert "sanity_members" not in record["settings"]["denoiser"]
    assert (
        "training the autoencoder: demo.pretrained is false"
        in (demo_run / DEMO / "logs/autoencoder.log").read_text()
    )


def test_shipped_weights_of_the_same_dataset_and_settings_are_installed(demo_run, tmp_path):
    """A fresh run rebuilds the dataset bit for bit (same fingerprint) and installs both
    parts instead of training; its members equal those of the run that trained them."""
    shipped = demo_run.parent / "shipped"
    workdir = run_with_shipped(tmp_path, shipped)
    logs = workdir / DEMO / "logs"
    assert "installed the shipped autoencoder" in (logs / "autoencoder.log").read_text()
    assert "installed the shipped denoiser" in (logs / "denoiser.log").read_text()
    assert "installed the shipped coarse" in (logs / "coarse.log").read_text()
    assert same_bytes(shipped / "denoiser/best.safetensors", workdir / MODEL / "best.safetensors")
    coarse = workdir / MODEL / "coarse/best.safetensors"
    assert same_bytes(shipped / "coarse/best.safetensors", coarse)
    store = "results/prior/default/8h/trajectories.zarr"
    ours, theirs = xr.open_zarr(workdir / store), xr.open_zarr(demo_run / store)
    np.testing.assert_array_equal(ours["latent"].values, theirs["latent"].values)


def test_other_settings_train_and_say_why(demo_run, tmp_path):
    """Other denoiser settings: the autoencoder and the coarse model are still installed, the
    denoiser trains (and declares the coarse model)."""
    shipped = demo_run.parent / "shipped"
    workdir = run_with_shipped(tmp_path, shipped, denoiser={"steps": 21})
    logs = workdir / DEMO / "logs"
    assert "installed the shipped autoencoder" in (logs / "autoencoder.log").read_text()
    assert "installed the shipped coarse" in (logs / "coarse.log").read_text()
    declared = yaml.safe_load((workdir / MODEL / "config.yaml").read_text())["coarse"]
    assert declared == {"path": "coarse", "block": 2}
    assert (
        "training the denoiser: the demo.denoiser settings are not those the shipped weights "
        "were trained with"
    ) in (logs / "denoiser.log").read_text()
    assert len(pd.read_csv(workdir / MODEL / "train_log.csv")) == 21


def test_dataset_has_the_weatherbench2_layout_and_units(demo_run):
    dataset = xr.open_zarr(demo_run / DEMO / "era5_demo.zarr")
    assert dataset["time"].dtype == np.dtype("datetime64[ns]")
    assert (np.diff(dataset["time"].values) == np.timedelta64(1, "h")).all()
    assert dataset["time"].values[0] == np.datetime64("2000-04-01T00", "ns")
    latitude, longitude = dataset["latitude"].values, dataset["longitude"].values
    assert latitude[0] == 90 and latitude[-1] == -90 and (np.diff(latitude) < 0).all()
    assert longitude[0] == 0 and longitude[-1] < 360 and (np.diff(longitude) > 0).all()
    assert dataset["level"].values.tolist() == [500]
    units = {name: dataset[name].attrs["units"] for name in dataset.data_vars}
    assert units == {
        "geopotential": "m**2 s**-2",
        "u_component_of_wind": "m s**-1",
        "v_component_of_wind": "m s**-1",
    }
    for name in dataset.data_vars:
        assert dataset[name].dims == ("time", "level", "latitude", "longitude")
        assert dataset[name].attrs["long_name"]
        assert np.isfinite(dataset[name].values).all()
    stats = json.loads((demo_run / DEMO / "era5_demo.stats.json").read_text())
    assert set(stats["variables"]) == set(units)
    assert all(entry["std"] > 0 for entry in stats["variables"].values())


def test_model_directory_holds_everything_generation_and_decoding_need(demo_run):
    autoencoder = demo_run / DEMO / "autoencoders/ae/0"
    latent_dir = autoencoder / "latents/demo"
    model = demo_run / MODEL
    for path in (
        autoencoder / "config.yaml",
        autoencoder / "weights.safetensors",
        latent_dir / "stats.safetensors",
        latent_dir / "ae/config.yaml",
        latent_dir / "ae/weights.safetensors",
        model / "config.yaml",
        model / "best.safetensors",
        model / "last.safetensors",
        model / "train_log.csv",
        model / "sanity.json",
        model / "coarse/config.yaml",
        model / "coarse/best.safetensors",
    ):
        assert path.is_file(), path
    metrics = json.loads((autoencoder / "metrics.json").read_text())
    assert set(metrics["variables"]) == {
        "geopotential",
        "u_component_of_wind",
        "v_component_of_wind",
    }
    for scores in metrics["variables"].values():
        assert scores["rmse"] > 0 and scores["relative_rmse"] > 0
    latents = xr.open_zarr(latent_dir / "latents.zarr")
    assert latents["latent"].dims == ("time", "channel", "y", "x")
    denoiser = yaml.safe_load((model / "config.yaml").read_text())
    assert denoiser["train"]["blanket_size"] == 4
    assert list(denoiser["latent_shape"]) == list(latents["latent"].shape[1:])


def test_sanity_judges_composed_trajectories_and_names_every_miss(demo_run):
    """The tiny demo model (20 training steps) misses targets: sanity.json says so, and every
    miss is a warning line in the sanity log; the table holds each check with its band."""
    model = demo_run / MODEL
    sanity = json.loads((model / "sanity.json").read_text())
    assert "2 composed trajectories of 8 states" in sanity["description"]
    assert "composition two_scale" in sanity["description"]  # auto, with the coarse model
    assert "overlap 2" in sanity["description"]  # the run's blanket_overlap
    table = pd.read_csv(model / "sanity.csv")
    metrics = {"std_ratio", "hourly_change_ratio", "seam_ratio", "spectrum_ratio"}
    assert metrics | {"mean_error_in_std"} == set(table["metric"])
    assert set(table["variable"]) == set(sanity["variables"])
    inside = (table["value"] >= table["low"]) & (table["value"] <= table["high"])
    assert (table["passed"] == inside).all()
    assert sanity["passed"] == bool(table["passed"].all())
    assert len(sanity["misses"]) == (~table["passed"]).sum() > 0
    log = (demo_run / DEMO / "logs/sanity.log").read_text()
    for line in sanity["misses"]:
        assert f"WARNING: the demo model misses a target: {line}" in log
    penalty = sanity["composition_penalty_of_a_perfect_model"]
    assert 0 < penalty["std_ratio"] and 0 < penalty["hourly_change_ratio"]
    assert penalty["sampler"] == "lms"  # the run's own


def test_aggregate_holds_every_member_of_the_demo_model(demo_run):
    merged = xr.open_zarr(demo_run / "results/prior/default/8h/trajectories.zarr")
    assert merged["latent"].dims == ("start_date", "member", "time", "channel", "y", "x")
    assert merged["latent"].shape[:3] == (1, 2, 8)
    assert np.isfinite(merged["latent"].values).all()
    assert merged.attrs["model_path"] == MODEL
    assert merged.attrs["composition"] == "two_scale"  # auto: the demo model has a coarse model


def test_a_second_run_has_nothing_to_do(demo_run):
    assert planned_jobs(run_snakemake(demo_run, "-n").stdout) == {}
    assert "Nothing to be done" in run_snakemake(demo_run, "-n").stdout

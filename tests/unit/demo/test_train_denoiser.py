"""Training of the demo denoiser: windows, the training loop, its model directory, sanity."""

import csv
import dataclasses

import numpy as np
import pytest
import torch
import xarray as xr
from skyquilt_testing.workflow import tiny_latent_dump

from skyquilt.demo.sanity import Trajectories, sample_trajectory, sanity_check, start_indices
from skyquilt.demo.train_denoiser import (
    Validation,
    blankets,
    declare_coarse,
    make_denoiser,
    train_denoiser,
    training_sigmas,
    window_length,
)
from skyquilt.diffusion.schedules import build_schedule
from skyquilt.models.calendar import time_features
from skyquilt.models.config import ModelDirectory, parse_model_config
from skyquilt.models.decoder import load_decoder, load_latent_stats
from skyquilt.models.weights import build_denoiser, load_denoiser
from skyquilt.planning.demo_settings import (
    CoarseSettings,
    DenoiserSettings,
    denoiser_config,
    held_out_mask,
    window_starts,
)
from skyquilt.sampling.blankets import padded_size

HELD_OUT = ("2000-04-02", "2000-04-02")
TINY = DenoiserSettings(
    blanket_size=4,
    hidden_channels=8,
    blocks=1,
    embedding=8,
    steps=12,
    batch_size=4,
    validation_every=5,
    validation_blankets=3,
    denoising_steps=3,
)


# Its coarse model: block means of 2 hours, windows of 2 to 4 blocks.
TINY_COARSE = CoarseSettings(
    **{**dataclasses.asdict(TINY), "steps": 6}, block=2, min_blanket_size=2
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny dataset -> untrained autoencoder -> latent dump -> trained tiny denoiser, which
    declares a coarse model, and that coarse model."""
    root = tmp_path_factory.mktemp("demo")
    latent_dir = root / "ae/latents/demo"
    dataset_path = tiny_latent_dump(root, 2, latent_dir, HELD_OUT)
    model_path = latent_dir / "denoisers/denoiser/0"
    summary = make_denoiser(latent_dir, model_path, TINY, HELD_OUT, coarse=TINY_COARSE)
    make_denoiser(latent_dir, model_path / "coarse", TINY_COARSE, HELD_OUT)
    return dataset_path, model_path, summary


def test_windows_lie_entirely_inside_the_mask():
    mask = np.array([1, 1, 1, 0, 1, 1, 1, 1], dtype=bool)
    assert window_starts(mask, 3).tolist() == [0, 4, 5]
    assert window_starts(mask, 5).tolist() == []


def test_training_noise_levels_are_log_normal_within_the_schedule_when_asked():
    """log sigma has the configured mean and std (within 5 standard errors of 20,000 draws),
    clipped to the schedule's range; without a mean, the schedule's own draws."""
    schedule = build_schedule("rectified", 1e-3, 1e3)
    settings = dataclasses.replace(TINY, batch_size=20_000, sigma_log_mean=-1.2, sigma_log_std=1.2)
    log_sigma = training_sigmas(schedule, settings, torch.Generator().manual_seed(0)).log()
    assert abs(log_sigma.mean().item() + 1.2) < 5 * 1.2 / 20_000**0.5
    assert abs(log_sigma.std().item() - 1.2) < 5 * 1.2 / (2 * 20_000) ** 0.5
    wide = dataclasses.replace(settings, sigma_log_std=20.0)
    sigma = training_sigmas(schedule, wide, torch.Generator().manual_seed(0))
    assert (sigma.min().item(), sigma.max().item()) == pytest.approx((1e-3, 1e3))
    uniform = dataclasses.replace(settings, sigma_log_mean=None)
    expected = schedule.sigma(torch.rand(20_000, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(
        training_sigmas(schedule, uniform, torch.Generator().manual_seed(0)), expected.float()
    )


def test_validation_loss_decreases_when_training_on_a_fixed_tiny_set():
    torch.manual_seed(0)
    steps = torch.arange(12, dtype=torch.float32)
    latents = torch.sin(
        steps[:, None, None, None] / 3 + torch.linspace(0, 3, 2 * 4 * 8).reshape(2, 4, 8)
    )
    features = torch.zeros(12, 4)
    settings = dataclasses.replace(TINY, steps=150, learning_rate=3e-3)
    model = parse_model_config(denoiser_config(settings, (2, 4, 8)))
    schedule = build_schedule("rectified", 1e-3, 1e3)
    starts = window_starts(np.ones(12, dtype=bool), 4)
    validation = Validation.draw(latents, features, starts, 8, schedule, 4, seed=1)
    denoiser = build_denoiser(model)
    before = validation.loss(denoiser)
    best, log = train_denoiser(denoiser, latents, features, starts, validation, schedule, settings)
    assert len(log) == 150
    assert validation.loss(best) < 0.7 * before


def test_model_directory_holds_configs_weights_and_log(trained):
    _, model_path, summary = trained
    names = {path.name for path in model_path.iterdir()}
    assert {"config.yaml", "best.safetensors", "last.safetensors", "train_log.csv"} <= names
    denoiser, config = load_denoiser(model_path, "best")
    assert config.blanket_size == 4 and config.blanket_dt == 1 and config.latent_shape == (2, 4, 8)
    assert config.noise_schedule == "rectified" and config.denoising_steps == 3
    load_denoiser(model_path, "last")
    assert summary["steps"] == 12


def test_the_coarse_model_denoises_block_means_of_every_window_length(trained):
    """Its config: states 2 hours apart, windows of 2 to 4 blocks, declared by the denoiser;
    its training windows are block means of consecutive hours, of lengths drawn per batch."""
    _, model_path, _ = trained
    _, model = load_denoiser(model_path)
    assert (model.coarse.path, model.coarse.block) == ("coarse", 2)
    _, coarse = load_denoiser(model_path / "coarse")
    assert (coarse.blanket_size, coarse.min_blanket_size, coarse.blanket_dt) == (4, 2, 2)
    assert coarse.coarse is None
    generator = torch.Generator().manual_seed(0)
    lengths = {window_length(TINY_COARSE, generator) for _ in range(40)}
    assert lengths == {2, 3, 4} and window_length(TINY, generator) == 4
    series = torch.arange(10.0)[:, None]
    means = blankets(series, torch.tensor([0, 3]), 2, block=2)
    assert means[..., 0].tolist() == [[0.5, 2.5], [3.5, 5.5]]
    declare_coarse(model_path, None)
    assert load_denoiser(model_path)[1].coarse is None
    declare_coarse(model_path, TINY_COARSE)
    assert load_denoiser(model_path)[1].coarse == model.coarse


def test_training_log_has_a_loss_per_step_and_periodic_validation(trained):
    _, model_path, summary = trained
    with (model_path / "train_log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == list(range(1, 13))
    validated = [int(row["step"]) for row in rows if row["validation_loss"]]
    assert validated == [5, 10, 12]
    assert float(rows[-1]["validation_loss"]) == pytest.approx(summary["final_validation_loss"])


def test_sanity_check_judges_decoded_composed_trajectories(trained):
    """The report's std ratio is that of the same composed trajectories sampled again (same
    seeds), decoded and compared with the held-out truth by an independent numpy computation
    (cos-latitude weights); every row is judged against its band."""
    dataset_path, model_path, _ = trained
    sampling = Trajectories(members=2, size=8, overlap=2, sampler="lms", steps=3, seed=5)
    report, rows = sanity_check(model_path, dataset_path, HELD_OUT, sampling)
    assert set(report["variables"]) == {
        "geopotential",
        "u_component_of_wind",
        "v_component_of_wind",
    }
    inside = (rows["value"] >= rows["low"]) & (rows["value"] <= rows["high"])
    assert (rows["passed"] == inside).all() and report["passed"] == bool(inside.all())

    denoiser, model = load_denoiser(model_path)
    directory = ModelDirectory(model_path)
    decoder = load_decoder(directory.autoencoder_dir)
    latent_mean, latent_std = load_latent_stats(directory.stats_file)
    dataset = xr.open_zarr(dataset_path)
    held = held_out_mask(dataset.time.values, HELD_OUT)
    hours = np.arange(padded_size(8, 4, 2)) * np.timedelta64(1, "h")
    members = []
    for member, start in enumerate(start_indices(held, 8, 2).tolist()):
        features = time_features(dataset.time.values[start] + hours)
        with torch.no_grad():
            latent = sample_trajectory(denoiser, model, features, sampling, 5 + member)[:8]
        members.append(decoder.decode(latent * latent_std + latent_mean, features[:8]))
    sampled = torch.stack(members)[:, :, 0].double().numpy()  # geopotential (M, T, H, W)
    truth = dataset["geopotential"].isel(time=held, level=0).values.astype(np.float64)
    weights = np.cos(np.deg2rad(dataset.latitude.values))[:, None]

    def weighted_std(values: np.ndarray) -> float:
        weight = np.broadcast_to(weights, values.shape)
        mean = (values * weight).sum() / weight.sum()
        return float(np.sqrt(((values - mean) ** 2 * weight).sum() / weight.sum()))

    expected = weighted_std(sampled) / weighted_std(truth)
    assert report["variables"]["geopotential"]["std_ratio"] == pytest.approx(expected, rel=1e-4)


def test_a_stochastic_sampler_draws_the_same_trajectory_from_the_same_seed(trained):
    """ddpm's fresh noise at every step follows the seed, whatever the global RNG was before."""
    _, model_path, _ = trained
    denoiser, model = load_denoiser(model_path)
    sampling = Trajectories(members=1, size=8, overlap=2, sampler="ddpm", steps=3)
    features = time_features(np.datetime64("2000-04-03T00") + np.arange(8) * np.timedelta64(1, "h"))
    draws = []
    for state in (1, 2):
        torch.manual_seed(state)
        with torch.no_grad():
            draws.append(sample_trajectory(denoiser, model, features, sampling, 5))
    assert torch.equal(draws[0], draws[1])
    with torch.no_grad():
        other = sample_trajectory(denoiser, model, features, sampling, 6)
    assert not torch.equal(draws[0], other)


def test_sanity_check_composes_as_the_run_does(trained):
    """With the run's two_scale composition the trajectories are corrected by the coarse model
    (they differ from blankets alone) and the perfect model's penalty is two-scale's."""
    dataset_path, model_path, _ = trained
    reports = {}
    for composition in ("blankets", "two_scale"):
        sampling = Trajectories(2, 8, 2, "lms", 3, seed=5, composition=composition)
        reports[composition] = sanity_check(model_path, dataset_path, HELD_OUT, sampling)[0]
    assert "composition two_scale" in reports["two_scale"]["description"]
    blankets_std = reports["blankets"]["variables"]["geopotential"]["std_ratio"]
    assert reports["two_scale"]["variables"]["geopotential"]["std_ratio"] != blankets_std
    penalties = [report["composition_penalty_of_a_perfect_model"] for report in reports.values()]
    assert penalties[0]["std_ratio"] != penalties[1]["std_ratio"]

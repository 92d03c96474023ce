"""The demo autoencoder: shapes, its directory, normalisation and its training loop."""

import numpy as np
import pytest
import torch
import yaml

from skyquilt.demo.dataset import area_weights
from skyquilt.demo.train_autoencoder import reconstruction_rmse, train_autoencoder
from skyquilt.demo.training import TrainingBudget
from skyquilt.models.autoencoder import Autoencoder, load_autoencoder, save_autoencoder
from skyquilt.models.calendar import time_features
from skyquilt.planning.demo_settings import AutoencoderSettings

VARIABLES = ["geopotential", "u_component_of_wind", "v_component_of_wind"]


def tiny_autoencoder(**kwargs) -> Autoencoder:
    torch.manual_seed(0)
    options = {"latent_channels": 4, "width": 4, "downsamplings": 2} | kwargs
    return Autoencoder(VARIABLES, (16, 32), mean=[5e4, 5.0, 0.0], std=[3e3, 13.0, 12.0], **options)


def features(count: int) -> torch.Tensor:
    times = np.datetime64("2000-01-01", "ns") + np.arange(count) * np.timedelta64(5, "h")
    return time_features(times)


def test_encode_maps_states_to_a_coarser_latent_and_decode_back():
    model = tiny_autoencoder()
    states = torch.randn(3, 3, 16, 32)
    latent = model.encode(states)
    assert latent.shape == (3, 4, 4, 8) == (3, *model.latent_shape)
    assert model.decode(latent, features(3)).shape == states.shape


@pytest.mark.parametrize("downsamplings", [1, 2, 3])
def test_shuffle_resampling_has_the_same_shapes(downsamplings):
    model = tiny_autoencoder(resampling="shuffle", downsamplings=downsamplings)
    states = torch.randn(2, 3, 16, 32)
    latent = model.encode(states)
    factor = 2**downsamplings
    assert latent.shape == (2, 4, 16 // factor, 32 // factor) == (2, *model.latent_shape)
    assert model.decode(latent, features(2)).shape == states.shape


def test_unknown_resampling_is_refused_with_the_allowed_ones():
    with pytest.raises(ValueError, match=r"'nearest' is not one of \('interpolate', 'shuffle'\)"):
        tiny_autoencoder(resampling="nearest")


def test_only_shuffle_resampling_reconstructs_waves_near_the_truncation():
    """Strided convolutions and bilinear doubling lose a wave of 14 cycles on 32 longitudes
    (the latent grid has 8); space-to-depth keeps it, as a pattern across channels."""
    generator = torch.Generator().manual_seed(0)
    longitude = torch.arange(32) * 2 * np.pi / 32
    amplitudes = torch.randn(128, 3, 1, 2, generator=generator)
    waves = amplitudes[..., :1] * torch.cos(14 * longitude) + amplitudes[..., 1:] * torch.sin(
        14 * longitude
    )
    states = waves.expand(128, 3, 16, 32).contiguous()
    times = features(128)
    settings = AutoencoderSettings(steps=200, batch_size=8, learning_rate=3e-3)
    errors = {}
    for resampling in ("interpolate", "shuffle"):
        model = tiny_autoencoder(width=8, resampling=resampling)
        train_autoencoder(model, states, times, torch.ones(16), settings)
        errors[resampling] = reconstruction_rmse(model, states, times, torch.ones(16))
    # the waves have unit variance per amplitude: an rmse near 1 reconstructs nothing
    assert torch.all(errors["interpolate"] > 0.5), errors
    assert torch.all(errors["shuffle"] < 0.2), errors


def test_latent_is_several_times_smaller_than_the_state():
    model = Autoencoder(VARIABLES, (32, 64))
    assert 3 * 32 * 64 / np.prod(model.latent_shape) >= 4


def test_decoding_depends_on_the_timestamp():
    model = tiny_autoencoder()
    for parameter in model.time_embedding.parameters():
        torch.nn.init.normal_(parameter)
    latent = model.encode(torch.randn(1, 3, 16, 32))
    midnight, noon = time_features(np.array(["2000-01-01T00", "2000-01-01T12"], "datetime64[ns]"))
    assert not torch.allclose(
        model.decode(latent, midnight[None]), model.decode(latent, noon[None])
    )


def test_grid_must_be_divisible_by_the_downsampling():
    with pytest.raises(ValueError, match="divisible"):
        Autoencoder(VARIABLES, (18, 32), downsamplings=2)


def test_normalise_and_denormalise_are_inverse():
    model = tiny_autoencoder()
    physical = torch.tensor([5.3e4, 20.0, -3.0])[None, :, None, None].expand(2, 3, 16, 32)
    assert torch.allclose(model.denormalise(model.normalise(physical)), physical)


@pytest.mark.parametrize("resampling", ["interpolate", "shuffle"])
def test_directory_round_trip_gives_the_same_model(tmp_path, resampling):
    model = tiny_autoencoder(resampling=resampling).eval()
    save_autoencoder(model, tmp_path, extra={"dataset": "somewhere.zarr"})
    loaded = load_autoencoder(tmp_path)
    states, feats = torch.randn(2, 3, 16, 32), features(2)
    assert loaded.variables == VARIABLES and loaded.latent_shape == model.latent_shape
    assert loaded.resampling == resampling
    assert torch.equal(loaded.mean, model.mean) and torch.equal(loaded.std, model.std)
    with torch.no_grad():
        assert torch.equal(loaded(states, feats), model(states, feats))
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "config.yaml",
        "weights.safetensors",
    ]


def test_a_directory_from_before_resampling_loads_as_interpolate(tmp_path):
    model = tiny_autoencoder().eval()
    save_autoencoder(model, tmp_path)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    del config["architecture"]["resampling"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    loaded = load_autoencoder(tmp_path)
    states = torch.randn(2, 3, 16, 32)
    assert loaded.resampling == "interpolate"
    with torch.no_grad():
        assert torch.equal(loaded(states, features(2)), model(states, features(2)))


def test_training_loss_decreases_on_a_fixed_tiny_batch():
    model = tiny_autoencoder()
    grid = torch.linspace(0, 2 * np.pi, 32)
    states = torch.stack([torch.sin(grid * k).expand(3, 16, 32) for k in (1, 2, 3, 4)])
    settings = AutoencoderSettings(steps=60, batch_size=4, learning_rate=3e-3)
    losses = train_autoencoder(
        model, states, features(4), area_weights(np.linspace(90, -90, 16)), settings
    )
    assert len(losses) == 60
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_reconstruction_rmse_is_zero_for_a_perfect_model():
    class Identity(torch.nn.Module):
        def forward(self, x, time_features):
            return x

    states = torch.randn(5, 3, 16, 32)
    rmse = reconstruction_rmse(Identity(), states, features(5), torch.ones(16), batch_size=2)
    assert rmse.shape == (3,) and torch.all(rmse == 0)


def test_budget_ends_at_the_step_count_and_anneals_to_zero():
    budget = TrainingBudget(steps=10, max_minutes=60)
    assert not budget.spent(9) and budget.spent(10)
    assert budget.cosine(0) == pytest.approx(1.0, abs=1e-4) and budget.cosine(10) == 0.0


def test_budget_ends_when_the_wall_clock_cap_is_reached():
    budget = TrainingBudget(steps=10**9, max_minutes=1e-9)
    assert budget.spent(1) and budget.cosine(1) == 0.0

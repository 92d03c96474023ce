"""The latent dump: every state encoded, the latent statistics, the autoencoder beside them."""

import numpy as np
import pytest
import safetensors.torch
import torch
import xarray as xr
from skyquilt_testing.workflow import tiny_latent_dump

from skyquilt.demo.latents import STD_FLOOR, latent_statistics

HELD_OUT = ("2000-04-02", "2000-04-02")


@pytest.fixture(scope="module")
def dumped(tmp_path_factory):
    """A tiny dataset, an untrained autoencoder and their latent dump: the three paths."""
    root = tmp_path_factory.mktemp("demo")
    dataset_path = tiny_latent_dump(root, 4, root / "latents/demo", HELD_OUT)
    return dataset_path, root / "ae", root / "latents/demo"


def test_dump_holds_one_latent_per_dataset_state(dumped):
    dataset_path, _, latent_dir = dumped
    dump = xr.open_zarr(latent_dir / "latents.zarr")
    assert dump.latent.dims == ("time", "channel", "y", "x")
    assert dump.latent.shape == (48, 4, 4, 8) and dump.latent.dtype == np.float32
    assert np.array_equal(dump.time.values, xr.open_zarr(dataset_path).time.values)


def test_statistics_are_those_of_the_training_period(dumped):
    _, _, latent_dir = dumped
    latents = torch.from_numpy(xr.open_zarr(latent_dir / "latents.zarr").latent.values)
    stats = safetensors.torch.load_file(latent_dir / "stats.safetensors")
    assert stats["mean"].shape == stats["std"].shape == (4, 4, 8)
    training = latents[:24].double()
    assert torch.allclose(stats["mean"].double(), training.mean(dim=0), atol=1e-5)
    assert torch.allclose(stats["std"].double(), training.std(dim=0), rtol=1e-4)


def test_autoencoder_is_copied_into_the_latent_dir(dumped):
    _, autoencoder_dir, latent_dir = dumped
    for name in ("config.yaml", "weights.safetensors"):
        assert (latent_dir / "ae" / name).read_bytes() == (autoencoder_dir / name).read_bytes()


def test_dump_leaves_no_temporary_files(dumped):
    _, _, latent_dir = dumped
    names = sorted(path.name for path in latent_dir.iterdir())
    assert names == ["ae", "latents.zarr", "stats.safetensors"]


def test_latent_statistics_skip_held_out_states_and_floor_the_std():
    latents = torch.zeros(4, 2, 1, 1)
    latents[:3, 0] = torch.tensor([1.0, 2.0, 3.0])[:, None, None]
    latents[3] = 100.0  # held out
    mean, std = latent_statistics(latents, torch.tensor([True, True, True, False]))
    assert mean[0, 0, 0] == pytest.approx(2.0) and std[0, 0, 0] == pytest.approx(1.0)
    # The constant channel gets a small positive std, not zero.
    assert mean[1, 0, 0] == 0.0 and std[1, 0, 0] == pytest.approx(STD_FLOOR * 0.5)

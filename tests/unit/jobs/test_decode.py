"""Decoding: latents -> physical fields in WeatherBench2 layout, streamed, atomic, checked."""

import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
import xarray as xr
import zarr
from skyquilt_testing.decoding import (
    install_autoencoder,
    random_autoencoder,
    synthetic_dataset,
    write_synthetic_dataset,
)

from skyquilt.demo.dataset import VARIABLES
from skyquilt.io.fingerprints import INPUTS, dataset_record, files_record
from skyquilt.io.forecasts import CHECKSUMS, ForecastError, check_forecast
from skyquilt.io.shards import ShardError, write_shard
from skyquilt.jobs import decode
from skyquilt.jobs.decode import decode_member
from skyquilt.models import autoencoder as demo_autoencoder
from skyquilt.models.calendar import time_features
from skyquilt.models.config import ModelDirectory, ModelError
from skyquilt.models.decoder import Decoder
from skyquilt.scoring.baselines import align_truth

# Some datasets here are written as zarr v3 (xarray's default), as a real one may be; decoding
# must not depend on the dataset's store format.
pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")
START = "2000-04-03T05"
MODEL_PATH = "autoencoders/ae/0/latents/dump/denoisers/denoiser/0"


def valid_times(count: int, start: str = START) -> np.ndarray:
    return np.datetime64(start, "ns") + np.arange(count) * np.timedelta64(1, "h")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """A dataset, a random autoencoder in latent_dir/ae with non-trivial latent statistics, and
    a shard of T = 10 standardised latents encoded from the truth."""
    root = tmp_path_factory.mktemp("decode")
    dataset_path = write_synthetic_dataset(root / "era5.zarr")
    dataset = xr.open_zarr(dataset_path)
    autoencoder = random_autoencoder(dataset)
    times = valid_times(10)
    states = np.stack([dataset[name].sel(time=times).values[:, 0] for name in VARIABLES], axis=1)
    with torch.no_grad():
        latent = autoencoder.encode(autoencoder.normalise(torch.from_numpy(states)))
    mean, std = latent.mean(0), latent.std(0) + 0.1
    model_path = root / MODEL_PATH
    install_autoencoder(model_path, autoencoder, mean, std)
    shard = root / "shard.zarr"
    attrs = {"start_date": "2000-04-03T05", "member": 3, "trajectory_size": 10, "seed": 0}
    write_shard(shard, ((latent - mean) / std).numpy(), times, attrs)
    with torch.no_grad():
        expected = autoencoder.denormalise(autoencoder.decode(latent, time_features(times)))
    return {
        "root": root,
        "dataset": dataset_path,
        "model_path": model_path,
        "shard": shard,
        "expected": expected.numpy(),
        "times": times,
    }


@pytest.fixture(scope="module")
def decoded(world) -> xr.Dataset:
    output = world["root"] / "decoded.zarr"
    decode_member(world["shard"], world["model_path"], world["dataset"], output, states_per_chunk=3)
    return xr.open_zarr(output)


def test_decoded_fields_are_the_autoencoder_output_of_the_destandardised_latents(world, decoded):
    """z = z_std * std + mean, decoded with the valid times' features, in physical units: the
    same values as encode -> decode in memory, whatever the block size."""
    for index, name in enumerate(VARIABLES):
        values = decoded[name].isel(time=0, member=0, level=0).values
        np.testing.assert_allclose(values, world["expected"][:, index], rtol=1e-5, atol=1e-3)


def test_decoded_store_follows_weatherbench2_conventions(world, decoded):
    truth = xr.open_zarr(world["dataset"])
    assert list(decoded.data_vars) == list(VARIABLES)
    for name in VARIABLES:
        assert decoded[name].dims == (
            "time", "member", "prediction_timedelta", "level", "latitude", "longitude",
        )  # fmt: skip
        assert decoded[name].attrs["units"] == VARIABLES[name]["units"]
        assert decoded[name].dtype == np.float32
    assert decoded.time.values.tolist() == [np.datetime64(START, "ns").astype(int)]
    assert decoded.member.values.tolist() == [3]
    lead = decoded.prediction_timedelta.values
    assert (lead == np.arange(10) * np.timedelta64(1, "h")).all()
    assert decoded.level.values.tolist() == [500]
    assert np.array_equal(decoded.latitude, truth.latitude)
    assert np.array_equal(decoded.longitude, truth.longitude)
    assert decoded.attrs["trajectory_size"] == 10 and "checksum" not in decoded.attrs
    assert decoded.chunks["prediction_timedelta"] == (3, 3, 3, 1)
    # The truth lines up with the decoded states by valid time.
    aligned = align_truth(truth, decoded)
    assert (aligned.valid_time.values[0] == world["times"]).all()


def test_decoded_fields_depend_on_the_timestamps(world, tmp_path):
    """The decoder is conditioned on the calendar: the same latents six hours later decode
    differently, so the valid times must reach it."""
    shard = xr.open_zarr(world["shard"])
    later = tmp_path / "later.zarr"
    write_shard(later, shard.latent.values, world["times"] + np.timedelta64(6, "h"), {"member": 3})
    output = tmp_path / "decoded.zarr"
    decode_member(later, world["model_path"], world["dataset"], output)
    shifted = xr.open_zarr(output)["geopotential"].isel(time=0, member=0, level=0).values
    assert not np.allclose(shifted, world["expected"][:, 0], atol=1e-2)


class RecordingDecoder:
    """A stand-in decoder on a large grid: records batch sizes, returns numpy-allocated fields
    (which tracemalloc sees), and can fail at a chosen call."""

    def __init__(self, grid: tuple[int, int], fail_at: int | None = None):
        self.grid, self.fail_at, self.batches = grid, fail_at, []

    def __call__(self, latent: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        self.batches.append(latent.shape[0])
        if self.fail_at is not None and len(self.batches) == self.fail_at:
            raise RuntimeError("decoder failed")
        fields = np.empty((latent.shape[0], len(VARIABLES), *self.grid), dtype=np.float32)
        fields[:] = latent.mean().item()
        return torch.from_numpy(fields)


def use_decoder(monkeypatch, recording: RecordingDecoder) -> None:
    decoder = Decoder(tuple(VARIABLES), (None,) * len(VARIABLES), recording)
    monkeypatch.setattr(decode, "load_decoder", lambda *arguments: decoder)


@pytest.fixture
def large_grid(tmp_path) -> dict:
    """A 64 x 128 dataset (coordinates only matter), latent statistics for (2, 4, 8) and
    placeholder autoencoder files."""
    dataset = tmp_path / "grid.zarr"
    synthetic_dataset("2000-01-01", 2, (64, 128)).to_zarr(dataset, consolidated=True)
    stats = ModelDirectory(tmp_path / MODEL_PATH).stats_file
    stats.parent.mkdir(parents=True)
    safetensors.torch.save_file({"mean": torch.zeros(2, 4, 8), "std": torch.ones(2, 4, 8)}, stats)
    # Placeholders: the stand-in decoder replaces the autoencoder these files would hold.
    for path in ModelDirectory(tmp_path / MODEL_PATH).decoder_files().values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    return {"root": tmp_path, "dataset": dataset, "model_path": tmp_path / MODEL_PATH}


def decode_peak(large_grid: dict, size: int, states_per_chunk: int) -> int:
    """Peak traced memory (bytes) of decoding a T = `size` shard."""
    shard = large_grid["root"] / f"shard-{size}.zarr"
    latent = np.random.default_rng(0).standard_normal((size, 2, 4, 8)).astype(np.float32)
    write_shard(shard, latent, valid_times(size), {"member": 0})
    output = large_grid["root"] / f"decoded-{size}.zarr"
    tracemalloc.start()
    try:
        decode_member(shard, large_grid["model_path"], large_grid["dataset"], output,
                      states_per_chunk=states_per_chunk)  # fmt: skip
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_decoding_streams_a_few_states_at_a_time(large_grid, monkeypatch):
    """T = 240 decodes in blocks of 4 states, and its peak memory is close to that of T = 24,
    far below the 24 MB its fields take in total."""
    recording = RecordingDecoder((64, 128))
    use_decoder(monkeypatch, recording)
    short = decode_peak(large_grid, 24, states_per_chunk=4)
    recording.batches.clear()
    long = decode_peak(large_grid, 240, states_per_chunk=4)
    assert recording.batches == [4] * 60
    total_fields = 240 * len(VARIABLES) * 64 * 128 * 4
    print(f"peak traced memory: T=24 {short / 1e6:.2f} MB, T=240 {long / 1e6:.2f} MB")
    assert long < 1.5 * short and long < total_fields / 4, (short, long, total_fields)
    decoded = xr.open_zarr(large_grid["root"] / "decoded-240.zarr")
    assert decoded.sizes["prediction_timedelta"] == 240
    assert np.isfinite(decoded["geopotential"].isel(prediction_timedelta=-1)).all()


def test_a_decoder_of_several_levels_fills_one_sorted_level_axis(large_grid, monkeypatch):
    """Channels (geopotential 850, geopotential 500, u 850, u 500, v 500, v 850) decode into
    variables (..., level [500, 850], ...) with each channel at its level."""
    dataset = synthetic_dataset("2000-01-01", 2, (8, 16))
    dataset = xr.concat([dataset, dataset.assign_coords(level=[850])], "level")
    dataset.to_zarr(large_grid["root"] / "levels.zarr", consolidated=True)
    channels = [(name, level) for name in VARIABLES for level in (850, 500)]

    def decode_channels(latent: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Channel c is the constant c everywhere."""
        values = torch.arange(len(channels), dtype=torch.float32)[None, :, None, None]
        return values.expand(latent.shape[0], -1, 8, 16).clone()

    decoder = Decoder(*zip(*channels, strict=True), decode_channels)
    monkeypatch.setattr(decode, "load_decoder", lambda *arguments: decoder)
    shard = large_grid["root"] / "shard.zarr"
    write_shard(shard, np.zeros((3, 2, 4, 8), np.float32), valid_times(3), {"member": 0})
    output = large_grid["root"] / "decoded.zarr"
    decode_member(shard, large_grid["model_path"], large_grid["root"] / "levels.zarr", output)
    decoded = xr.open_zarr(output)
    assert decoded.level.values.tolist() == [500, 850]
    for index, (name, level) in enumerate(channels):
        assert (decoded[name].sel(level=level).values == index).all()


def test_a_failed_decoding_leaves_the_previous_output_untouched(large_grid, monkeypatch):
    use_decoder(monkeypatch, RecordingDecoder((64, 128)))
    decode_peak(large_grid, 12, states_per_chunk=4)
    output = large_grid["root"] / "decoded-12.zarr"
    before = xr.open_zarr(output).load()
    use_decoder(monkeypatch, RecordingDecoder((64, 128), fail_at=2))
    with pytest.raises(RuntimeError, match="decoder failed"):
        decode_peak(large_grid, 12, states_per_chunk=4)
    xr.testing.assert_identical(xr.open_zarr(output).load(), before)
    leftovers = [path.name for path in large_grid["root"].iterdir() if path.name.startswith(".")]
    assert leftovers == []


def test_a_damaged_shard_fails_naming_it(world, tmp_path):
    shard = tmp_path / "damaged.zarr"
    latent = xr.open_zarr(world["shard"]).latent.values
    write_shard(shard, latent, world["times"], {"member": 0})
    group = zarr.open_group(shard, mode="r+")
    group["latent"][0] = group["latent"][0] + 1.0
    output = tmp_path / "decoded.zarr"
    with pytest.raises(ShardError, match=f"shard {shard}: .*checksum"):
        decode_member(shard, world["model_path"], world["dataset"], output)
    assert not output.exists()


@pytest.mark.parametrize(
    "missing", ["stats.safetensors", "ae/config.yaml", "ae/weights.safetensors"]
)
def test_a_missing_decoder_or_statistics_file_names_the_expected_path(world, tmp_path, missing):
    latent_dir = tmp_path / "autoencoders/ae/0/latents/dump"
    model_path = tmp_path / MODEL_PATH
    source = ModelDirectory(Path(world["model_path"])).latent_dir
    for name in ("stats.safetensors", "ae/config.yaml", "ae/weights.safetensors"):
        if name != missing:
            (latent_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (latent_dir / name).write_bytes((source / name).read_bytes())
    with pytest.raises(ModelError, match=str(latent_dir / missing)):
        decode_member(world["shard"], model_path, world["dataset"], tmp_path / "out.zarr")


def test_the_decoder_files_checked_at_parse_time_are_those_the_autoencoder_uses():
    files = ModelDirectory(MODEL_PATH).decoder_files()
    assert files["decoder config"].name == demo_autoencoder.CONFIG_FILE
    assert files["decoder weights"].name == demo_autoencoder.WEIGHTS_FILE
    assert files["latent statistics"] == ModelDirectory(Path(MODEL_PATH)).stats_file


def test_a_decoded_member_records_its_inputs_and_the_checksums_of_its_values(world, decoded):
    inputs = decoded.attrs[INPUTS]
    files = ModelDirectory(world["model_path"]).decoder_files().values()
    assert inputs["decoder"] == files_record(files)
    grid = dataset_record(world["dataset"], xr.open_zarr(world["dataset"]), VARIABLES, "grid")
    assert inputs["dataset"] == grid
    assert set(decoded.attrs[CHECKSUMS]) == set(VARIABLES)
    check_forecast(world["root"] / "decoded.zarr")


def test_a_damaged_chunk_of_a_decoded_member_is_found(world, decoded, tmp_path):
    copy = tmp_path / "decoded.zarr"
    shutil.copytree(world["root"] / "decoded.zarr", copy)
    chunk = sorted(path for path in (copy / "geopotential").iterdir() if path.name[0] != ".")[1]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(ForecastError, match=f"decoded member {copy}: .*geopotential"):
        check_forecast(copy)

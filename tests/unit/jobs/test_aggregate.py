"""The aggregate job refuses an ensemble sampled from more than one denoiser (by content),
naming the members and the fingerprints, and writes nothing."""

import dataclasses
import shutil

import pytest
import xarray as xr
from skyquilt_testing.files import flip_last_bit_keeping_times

from skyquilt.io.fingerprints import INPUTS
from skyquilt.io.shards import ShardError
from skyquilt.io.trajectories import FINGERPRINTS
from skyquilt.jobs.aggregate import run_aggregate
from skyquilt.jobs.generate import run_generation
from skyquilt.planning.model import denoiser_fingerprint
from skyquilt.sampling.request import RunSettings

DATE = "2000-04-03T00"
SETTINGS = {
    "model_target": "best", "sampler": "ddim", "sampler_options": {}, "steps": 2,
    "precision": "float32", "overlap": 4, "stitch": "symmetric", "seed": 3,
}  # fmt: skip


def planned_settings(model) -> RunSettings:
    settings = RunSettings(model_path=str(model), **SETTINGS)
    fingerprint = denoiser_fingerprint(str(model), "best")
    return dataclasses.replace(settings, model_fingerprint=fingerprint)


def shard(root, member: int) -> str:
    return str(root / "shards" / DATE / f"{member}.zarr")


@pytest.fixture(scope="module")
def retrained(tiny_model, tmp_path_factory):
    """Members 0 and 1 sampled from the tiny model, then its weights replaced in place keeping
    their times (retrained and copied over with rsync -a), and member 2 sampled from those.
    Returns (root, settings before, settings after)."""
    root = tmp_path_factory.mktemp("retrained")
    model = shutil.copytree(tiny_model, root / "model")
    before = planned_settings(model)
    for member in (0, 1):
        run_generation(before.member(12, DATE, member), shard(root, member), 1)
    flip_last_bit_keeping_times(model / "best.safetensors")
    after = planned_settings(model)
    run_generation(after.member(12, DATE, 2), shard(root, 2), 1)
    return root, before, after


def aggregate(root, settings: RunSettings, members: list[int], name="trajectories.zarr") -> None:
    shards = [shard(root, member) for member in members]
    run_aggregate(shards, str(root / name), settings, 12, [DATE], members)


def test_members_of_two_denoisers_are_not_merged(retrained):
    root, before, after = retrained
    old, new = before.model_fingerprint[:12], after.model_fingerprint[:12]
    with pytest.raises(ShardError) as raised:
        aggregate(root, after, [0, 1, 2])
    assert str(raised.value) == (
        f"members made from different inputs: {shard(root, 0)}, {shard(root, 1)} (denoiser "
        f"{old}); {shard(root, 2)} (denoiser {new}); an ensemble is sampled from one "
        "denoiser: regenerate the members of the other (delete their shards, or run snakemake "
        "--forcerun <shard>)"
    )
    assert not (root / "trajectories.zarr").exists()


def test_members_of_another_denoiser_than_the_planned_one_are_not_merged(retrained):
    root, before, after = retrained
    with pytest.raises(ShardError, match=(
        f"every member records denoiser fingerprint {before.model_fingerprint[:12]}, but the "
        f"denoiser of {root / 'model'} \\(best\\) has fingerprint {after.model_fingerprint[:12]}"
    )):  # fmt: skip
        aggregate(root, after, [0, 1])
    assert not (root / "trajectories.zarr").exists()


def test_members_of_one_denoiser_are_merged_with_its_fingerprint_per_member(retrained):
    root, before, _ = retrained
    aggregate(root, before, [0, 1], name="merged.zarr")
    merged = xr.open_zarr(root / "merged.zarr")
    assert merged.attrs[FINGERPRINTS] == [[before.model_fingerprint] * 2]
    assert merged.attrs[INPUTS]["denoiser"]["fingerprint"] == before.model_fingerprint

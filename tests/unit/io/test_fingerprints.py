"""Content fingerprints: changed content is seen whatever the files' times, unchanged files
are not read again, and a record names what changed and which members differ."""

import hashlib
import json
import os
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import xarray as xr
import zarr
from skyquilt_testing.decoding import write_synthetic_dataset
from skyquilt_testing.files import rewrite_keeping_times

from skyquilt.io import fingerprints
from skyquilt.io.fingerprints import (
    FingerprintError,
    cache_directory,
    dataset_record,
    file_fingerprint,
    files_record,
    mixed_inputs,
    stale_inputs,
    tree_fingerprint,
)


@pytest.fixture
def reads():
    """Counts the files the fingerprints read."""
    with mock.patch.object(fingerprints.hashlib, "file_digest", wraps=hashlib.file_digest) as spy:
        yield spy


def test_new_content_with_the_old_times_and_size_is_seen(tmp_path):
    weights = tmp_path / "best.safetensors"
    weights.write_bytes(b"old weights")
    assert file_fingerprint(weights) == hashlib.sha256(b"old weights").hexdigest()
    rewrite_keeping_times(weights, b"new weights")
    assert file_fingerprint(weights) == hashlib.sha256(b"new weights").hexdigest()


def test_an_unchanged_file_is_read_once(tmp_path, reads):
    weights = tmp_path / "best.safetensors"
    weights.write_bytes(b"weights")
    first = file_fingerprint(weights)
    assert (file_fingerprint(weights), reads.call_count) == (first, 1)
    os.utime(weights)  # a new time alone: read again, same fingerprint
    assert (file_fingerprint(weights), reads.call_count) == (first, 2)


def test_a_damaged_cache_is_ignored(tmp_path):
    weights = tmp_path / "best.safetensors"
    weights.write_bytes(b"weights")
    file_fingerprint(weights)
    (cache_file,) = [
        path
        for path in cache_directory().glob("*.json")
        if json.loads(path.read_text())["directory"] == str(tmp_path.resolve())
    ]
    data = json.loads(cache_file.read_text())
    data["entries"]["best.safetensors"][-1] = "0" * 64  # a wrong digest, checksum unchanged
    cache_file.write_text(json.dumps(data))
    assert file_fingerprint(weights) == hashlib.sha256(b"weights").hexdigest()
    cache_file.write_text("{not json")
    assert file_fingerprint(weights) == hashlib.sha256(b"weights").hexdigest()


def test_an_unwritable_cache_costs_only_reads(tmp_path, monkeypatch, reads):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    (tmp_path / "file").write_text("not a directory")
    weights = tmp_path / "best.safetensors"
    weights.write_bytes(b"weights")
    assert file_fingerprint(weights) == file_fingerprint(weights)
    assert reads.call_count == 2


def test_a_retargeted_link_is_the_new_file(tmp_path):
    old, new = tmp_path / "v1.safetensors", tmp_path / "v2.safetensors"
    new.write_bytes(b"retrained")
    os.utime(new, ns=(0, 0))  # older than the first weights and their fingerprint
    old.write_bytes(b"trained")
    link = tmp_path / "best.safetensors"
    link.symlink_to(old.name)
    assert file_fingerprint(link) == file_fingerprint(old)
    link.unlink()
    link.symlink_to(new.name)
    assert file_fingerprint(link) == hashlib.sha256(b"retrained").hexdigest()


def test_a_directory_changes_with_any_file_or_name(tmp_path):
    store = tmp_path / "array"
    (store / "c" / "0").mkdir(parents=True)
    (store / "zarr.json").write_text("{}")
    (store / "c" / "0" / "0").write_bytes(b"chunk 0")
    (store / "c" / "0" / "1").write_bytes(b"chunk 1")
    first = tree_fingerprint(store)
    assert tree_fingerprint(store) == first
    rewrite_keeping_times(store / "c" / "0" / "1", b"chunk 2")
    second = tree_fingerprint(store)
    assert second != first
    (store / "c" / "0" / "1").rename(store / "c" / "0" / "2")
    assert tree_fingerprint(store) not in (first, second)


def test_a_missing_or_special_file_is_named(tmp_path):
    with pytest.raises(FingerprintError, match=f"{tmp_path / 'gone'} cannot be read"):
        file_fingerprint(tmp_path / "gone")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(FingerprintError, match="is not a regular file"):
        file_fingerprint(tmp_path / "pipe")


@pytest.fixture
def dataset(tmp_path) -> Path:
    return write_synthetic_dataset(tmp_path / "era5.zarr", hours=48)


def fingerprint(path: Path, part: str) -> str:
    return dataset_record(path, xr.open_zarr(path), ["geopotential"], part)["fingerprint"]


def test_a_changed_chunk_of_truth_changes_the_truth_but_not_the_grid(dataset):
    grid, truth = fingerprint(dataset, "grid"), fingerprint(dataset, "truth")
    before = {path: path.stat().st_mtime_ns for path in (dataset / "geopotential").iterdir()}
    array = zarr.open_array(dataset / "geopotential", mode="r+")
    array[30] = np.asarray(array[30]) + 1.0
    for path, mtime in before.items():
        os.utime(path, ns=(mtime, mtime))
    assert fingerprint(dataset, "grid") == grid
    assert fingerprint(dataset, "truth") != truth
    other = fingerprint(dataset, "truth")
    zarr.open_array(dataset / "u_component_of_wind", mode="r+")[0] = 0.0
    assert fingerprint(dataset, "truth") == other  # a variable that is not read


def test_new_units_change_the_grid(dataset):
    grid = fingerprint(dataset, "grid")
    changed = xr.open_zarr(dataset).load().drop_encoding()
    changed["geopotential"].attrs["units"] = "m"
    changed.to_zarr(dataset, mode="w", zarr_format=2, consolidated=True)
    assert fingerprint(dataset, "grid") != grid


def test_stale_inputs_name_the_files_and_both_fingerprints(tmp_path):
    config, weights = tmp_path / "config.yaml", tmp_path / "best.safetensors"
    config.write_text("latent_shape: [2, 4, 8]\n")
    weights.write_bytes(b"trained")
    record = files_record([config, weights])
    assert stale_inputs({"denoiser": record}) == []
    rewrite_keeping_times(weights, b"retrained")
    now = files_record([config, weights])["fingerprint"]
    assert stale_inputs({"denoiser": record}) == [
        f"denoiser ({config}, {weights}) changed since it was made (fingerprint "
        f"{record['fingerprint'][:12]} then, now {now[:12]})"
    ]
    weights.unlink()
    (line,) = stale_inputs({"denoiser": record})
    assert f"unreadable: {weights} cannot be read" in line


def test_mixed_inputs_name_the_members_and_their_fingerprints():
    old, new = {"fingerprint": "a" * 64, "files": []}, {"fingerprint": "b" * 64, "files": []}
    members = {f"shard {index}": {"denoiser": old} for index in range(5)}
    assert mixed_inputs(members) is None
    members["shard 5"] = {"denoiser": new}
    members["shard 6"] = {}
    assert mixed_inputs(members) == (
        "members made from different inputs: shard 0, shard 1, shard 2 and 2 more (denoiser "
        "aaaaaaaaaaaa); shard 5 (denoiser bbbbbbbbbbbb); shard 6 (no fingerprints recorded)"
    )

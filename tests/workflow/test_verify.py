"""`snakemake verify`: damage done to finished shards and aggregates is found, the damaged
files are moved aside, and the next plain run regenerates exactly those (and their
aggregate), bit for bit. Real snakemake on one finished tiny run (T = 12, 2 dates x 2 members).
"""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from skyquilt_testing.workflow import (
    copy_run,
    planned_jobs,
    run_snakemake,
    tiny_config,
    write_config,
)

SIZE_DIR = "results/prior/default/12h"
TRAJECTORIES = f"{SIZE_DIR}/trajectories.zarr"
VERIFY_LOG = "results/logs/default/verify.log"
DAMAGED = "results/damaged/default"
SLOTS = [(label, member) for label in ("2000-04-03T00", "2000-04-20T12") for member in (0, 1)]


def shard_path(label: str, member: int) -> str:
    return f"{SIZE_DIR}/shards/{label}/{member}.zarr"


def latents(path: Path) -> np.ndarray:
    return xr.open_zarr(path)["latent"].values


def stamps(run: Path, slots) -> dict:
    return {slot: (run / shard_path(*slot) / ".zattrs").stat().st_mtime_ns for slot in slots}


def chunk(store: Path) -> Path:
    """The one chunk file of a shard's latents (a shard is a single chunk)."""
    (found,) = [path for path in (store / "latent").iterdir() if not path.name.startswith(".")]
    return found


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model) -> Path:
    directory = tmp_path_factory.mktemp("verify_finished")
    write_config(directory, tiny_config(tiny_model))
    run_snakemake(directory, "--cores", "2")
    return directory


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    return copy_run(finished_run, tmp_path)


def verify(run: Path, ok: bool):
    result = run_snakemake(run, "--cores", "2", "verify", check=False)
    assert (result.returncode == 0) == ok, result.stdout[-3000:] + result.stderr[-3000:]
    return (run / VERIFY_LOG).read_text()


def test_verify_of_an_undamaged_run_changes_nothing(run):
    before = stamps(run, SLOTS)
    log = verify(run, ok=True)
    assert "checked 5 shards and aggregates; 0 damaged" in log
    assert planned_jobs(run_snakemake(run, "-n").stdout) == {}
    assert stamps(run, SLOTS) == before and not (run / DAMAGED).exists()


def test_damaged_shards_are_named_moved_aside_and_exactly_they_rerun(run, finished_run):
    truncated, deleted, flipped = SLOTS[0], SLOTS[3], SLOTS[1]
    path = chunk(run / shard_path(*truncated))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    chunk(run / shard_path(*deleted)).unlink()
    flip_a_byte(chunk(run / shard_path(*flipped)))
    untouched = [SLOTS[2]]
    before = stamps(run, untouched)

    log = verify(run, ok=False)
    for slot in (truncated, deleted, flipped):
        assert f"damaged: shard {shard_path(*slot)}" in log, log
        assert not (run / shard_path(*slot)).exists()
        (moved,) = (run / DAMAGED).glob(f"*/12h/shards/{slot[0]}/{slot[1]}.zarr")
        assert moved.is_dir()
    assert log.rstrip().splitlines()[-1].startswith("skyquilt.jobs.verify.DamagedOutputs: 3")
    assert "Traceback" in log
    assert (run / TRAJECTORIES).is_dir()  # intact: not moved, merely rerun
    assert not list((run / DAMAGED).glob("*/12h/trajectories.zarr"))

    assert planned_jobs(run_snakemake(run, "-n").stdout) == {
        "generate": 3,
        "aggregate": 1,
        "all": 1,
    }
    run_snakemake(run, "--cores", "2")
    for slot in SLOTS:
        np.testing.assert_array_equal(
            latents(run / shard_path(*slot)), latents(finished_run / shard_path(*slot))
        )
    np.testing.assert_array_equal(latents(run / TRAJECTORIES), latents(finished_run / TRAJECTORIES))
    assert stamps(run, untouched) == before
    assert "0 damaged" in verify(run, ok=True)


def test_a_damaged_aggregate_is_named_moved_aside_and_only_it_reruns(run, finished_run):
    flip_a_byte(run / TRAJECTORIES / "latent" / "1.0.0.0.0.0")
    before = stamps(run, SLOTS)

    log = verify(run, ok=False)
    assert f"damaged: aggregate {TRAJECTORIES}: the latents of member 0 of 2000-04-20T12" in log
    assert "1 damaged" in log and not (run / TRAJECTORIES).exists()
    assert list((run / DAMAGED).glob("*/12h/trajectories.zarr"))

    assert planned_jobs(run_snakemake(run, "-n").stdout) == {"aggregate": 1, "all": 1}
    run_snakemake(run, "--cores", "2")
    np.testing.assert_array_equal(latents(run / TRAJECTORIES), latents(finished_run / TRAJECTORIES))
    assert stamps(run, SLOTS) == before
    assert "0 damaged" in verify(run, ok=True)

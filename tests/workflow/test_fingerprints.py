"""Results identified by content: a dry run after an input's content changed, whatever its
files' times, plans exactly the jobs that read it and what follows them; `verify` finds the
outputs made from the old content. Real snakemake on copies of one finished tiny run.

The run: the tiny decodable world (random-weight denoiser with K = 8 reached through a
symbolic link `0 -> v1`, random autoencoder, synthetic dataset) inside the run's directory,
T = 12, one start date x 2 members, 3 steps; generated, aggregated, decoded, evaluated and one
gallery rendered. Changes keep the files' modification times, as `rsync -a`, `cp -p` or
`tar x` do.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from skyquilt_testing.files import flip_last_bit_keeping_times, keep_times
from skyquilt_testing.paths import ODD_DATASET, odd_world
from skyquilt_testing.workflow import (
    copy_run,
    planned_jobs,
    run_snakemake,
    tiny_config,
    write_config,
)

DATE = "2000-04-03T00"
SIZE_DIR = "results/prior/default/12h"
GALLERY = f"{SIZE_DIR}/render/gallery/{DATE}/geopotential-500.png"
DATASET = f"inputs/{ODD_DATASET}"
LAP = "inputs/models/autoencoders/ae/0/latents/dump/denoisers/denoiser"
LATENT_DIR = "inputs/models/autoencoders/ae/0/latents/dump"
EVERYTHING_DECODED = {"decode": 2, "evaluation": 1, "gallery": 1, "all": 1}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("fingerprints")
    model, _ = odd_world(workdir, "inputs")
    model.rename(model.parent / "v1")
    (model.parent / "0").symlink_to("v1")
    config = tiny_config(
        Path(f"{LAP}/0"),
        dataset=DATASET,
        start_dates=["2000-04-03 0h"],
        render={
            "fields": [{"variable": "geopotential", "level": 500}],
            "lead_hours": [0, 6, 11],
            "gallery_members": 2,
        },
    )
    write_config(workdir, config)
    run_snakemake(workdir, "--cores", "2", "all", "evaluate", GALLERY)
    return workdir


@pytest.fixture
def run(finished, tmp_path) -> Path:
    return copy_run(finished, tmp_path)


def dry_run(run: Path) -> dict[str, int]:
    return planned_jobs(run_snakemake(run, "-n").stdout)


def test_a_copied_run_plans_nothing(run):
    """New inodes and status-change times, the same content: nothing reruns."""
    assert dry_run(run) == {}


def test_new_denoiser_weights_rerun_every_member_and_what_follows(run):
    flip_last_bit_keeping_times(run / LAP / "v1" / "best.safetensors")
    assert dry_run(run) == {"generate": 2, "aggregate": 1, **EVERYTHING_DECODED}


def test_the_model_link_pointed_at_other_weights_reruns_every_member(run):
    shutil.copytree(run / LAP / "v1", run / LAP / "v2")  # copytree keeps the times
    flip_last_bit_keeping_times(run / LAP / "v2" / "best.safetensors")
    (run / LAP / "0").unlink()
    (run / LAP / "0").symlink_to("v2")
    assert dry_run(run) == {"generate": 2, "aggregate": 1, **EVERYTHING_DECODED}


@pytest.mark.parametrize(
    "changed", ["stats.safetensors", "ae/weights.safetensors"], ids=["statistics", "autoencoder"]
)
def test_a_new_decoder_reruns_the_decoding_and_what_follows_only(run, changed):
    flip_last_bit_keeping_times(run / LATENT_DIR / changed)
    assert dry_run(run) == EVERYTHING_DECODED


def test_a_changed_chunk_of_truth_reruns_the_evaluation_and_the_gallery_only(run):
    variable = run / DATASET / "geopotential"
    before = {path: path.stat() for path in variable.iterdir()}
    array = zarr.open_array(variable, mode="r+")
    array[24 * 9] = np.asarray(array[24 * 9]) + 1.0  # 2000-04-03 0h: the first state
    for path, stat in before.items():
        keep_times(path, stat)
    assert dry_run(run) == {"evaluation": 1, "gallery": 1, "all": 1}


def test_verify_moves_stale_outputs_aside_even_without_snakemakes_records(run):
    flip_last_bit_keeping_times(run / LAP / "v1" / "best.safetensors")
    shutil.rmtree(run / ".snakemake" / "metadata")  # a run copied without them, say
    assert dry_run(run) == {}  # Snakemake alone cannot tell
    decoded = run / SIZE_DIR / "decoded" / DATE / "1.zarr"
    chunk = sorted(path for path in (decoded / "geopotential").iterdir() if path.name[0] != ".")[0]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF  # and a decoded member damaged
    chunk.write_bytes(bytes(data))

    result = run_snakemake(run, "--cores", "2", "verify", check=False)
    assert result.returncode != 0
    log = (run / "results/logs/default/verify.log").read_text()
    stale = [line for line in log.splitlines() if "ERROR stale: " in line]
    assert len(stale) == 5, log  # 2 shards, the aggregate, decoded member 0, metrics.zarr
    assert all("denoiser (" in line and "changed since it was made" in line for line in stale)
    assert f"ERROR damaged: decoded member {decoded.relative_to(run)}: " in log
    assert "1 damaged, 5 stale" in log
    for name in ("shards", "trajectories.zarr", "decoded", "evaluation/metrics.zarr"):
        assert list((run / "results/damaged/default").glob(f"*/12h/{name}"))
    assert dry_run(run) == {"generate": 2, "aggregate": 1, **EVERYTHING_DECODED}

"""Paths with spaces and shell-special characters through `snakemake --profile profiles/slurm`
on the live local SLURM cluster: generation, aggregate, decode, render, evaluate and
statistics, with the model, the dataset and the outputs under such a directory. Its name has
every special character of the local test but the single quote (see skyquilt_testing.paths).

Uses the `live_slurm` fixture (skyquilt_testing.slurm): runs in CI or with
SKYQUILT_SLURM_TESTS=1, skipped otherwise. The same world and config as
tests/workflow/test_special_paths.py (T = 12, one start date x 2 members, 3 steps).
"""

from pathlib import Path

import xarray as xr
from skyquilt_testing.paths import ODD_FOR_SLURM, odd_world
from skyquilt_testing.workflow import REPO, tiny_config, write_config

DATE = "2000-04-03T00"
TARGETS = ("all", "render", "evaluate", "statistics")


def test_odd_paths_run_every_stage_through_slurm(live_slurm, tmp_path):
    model_path, dataset = odd_world(tmp_path, ODD_FOR_SLURM)
    workdir = tmp_path / "work"
    workdir.mkdir()
    output_dir = tmp_path / ODD_FOR_SLURM / "results & more"
    job = {"cpus": 1, "ram": "1GB", "time": "10:00", "partition": live_slurm.partition}
    hardware = {"backend": "slurm", "gpus_per_node": 1}
    hardware |= {name: job for name in ("gen", "aggregate", "decode", "render", "evaluate")}
    hardware["statistics"] = job
    config = tiny_config(
        model_path,
        dataset=str(dataset),
        output_dir=str(output_dir),
        start_dates=["2000-04-03 0h"],
        hardware=hardware,
        render={
            "fields": [{"variable": "geopotential", "level": 500}],
            "lead_hours": [0, 6, 11],
            "animation": {"mp4": False, "members": 1},
        },
    )
    write_config(workdir, config)
    args = ("--snakefile", str(REPO / "Snakefile"), "--configfile", str(workdir / "config.yaml"))
    # As docs/slurm.md says for such paths: the job's command goes to sbatch as a script.
    script = "--slurm-pass-command-as-script"
    live_slurm.snakemake(workdir, *TARGETS, *args, script, timeout=540).check()

    size_dir = output_dir / "prior" / "default" / "12h"
    assert xr.open_zarr(size_dir / "trajectories.zarr").latent.sizes["member"] == 2
    for member in (0, 1):
        assert (size_dir / "decoded" / DATE / f"{member}.zarr").is_dir()
    assert (size_dir / "render" / "gallery" / DATE / "geopotential-500.png").exists()
    assert (size_dir / "render" / "animation" / DATE / "0" / "geopotential-500.gif").exists()
    assert (size_dir / "evaluation" / "metrics.csv").exists()
    assert (size_dir / "statistics" / f"{DATE}.zarr").is_dir()
    written = {path.name for path in Path(tmp_path / ODD_FOR_SLURM).iterdir()}
    assert written == {"models", "era 5 & data.zarr", "era 5 & data.stats.json", "results & more"}

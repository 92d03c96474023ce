"""Paths with spaces and shell-special characters, and integers written as floats, work end to
end: generation, aggregate, decode, render, evaluate and statistics through the real
`snakemake`, with the model, the dataset and the outputs all under such a directory.

The tiny world of test_render_evaluate_requests (random-weight denoiser with K = 8, random demo
autoencoder, synthetic dataset), T = 12, one start date x 2 members, 3 steps.
"""

import subprocess

import xarray as xr
import yaml
from skyquilt_testing.models import write_random_model
from skyquilt_testing.paths import ODD, odd_world
from skyquilt_testing.workflow import REPO, SNAKEMAKE, run_snakemake, tiny_config, write_config

DATE = "2000-04-03T00"


def float_integers(config: dict) -> dict:
    """Every integer key of the run written as a float (2.0): accepted as the integer."""
    config.update(
        trajectory_sizes=12.0,
        num_samples_per_date=2.0,
        blanket_overlap=4.0,
        seed=1.0,
        diffusion={"num_steps": 3.0, "sampler": {"type": "lms", "config": {"order": 2.0}}},
        generation={"max_blankets_per_batch": 2.0, "processes": 1.0},
    )
    config["hardware"]["gen"]["cpus"] = 1.0
    return config


def test_odd_paths_and_float_integers_work_from_generation_to_statistics(tmp_path):
    model_path, dataset = odd_world(tmp_path)
    workdir = tmp_path / "work"
    workdir.mkdir()
    output_dir = tmp_path / ODD / "results & more"
    config = tiny_config(
        model_path,
        dataset=str(dataset),
        output_dir=str(output_dir),
        run="odd.run-1",
        start_dates=["2000-04-03 0h"],
        render={
            "fields": [{"variable": "geopotential", "level": 500}],
            "lead_hours": [0, 6, 11],
            "gallery_members": 2,
            "animation": {"mp4": False, "members": 1, "frames_per_job": 6},
        },
        decode={"states_per_chunk": 5},
    )
    write_config(workdir, float_integers(config))
    run_snakemake(workdir, "--cores", "2", "all", "render", "evaluate", "statistics")

    size_dir = output_dir / "prior" / "odd.run-1" / "12h"
    trajectories = xr.open_zarr(size_dir / "trajectories.zarr")
    assert dict(trajectories.latent.sizes) == {
        "start_date": 1,
        "member": 2,
        "time": 12,
        "channel": 2,
        "y": 4,
        "x": 8,
    }
    attrs = trajectories.attrs
    assert (attrs["seed"], attrs["steps"], attrs["overlap"]) == (1, 3, 4)
    assert yaml.safe_load(attrs["sampler_config"]) == {"order": 2}
    for member in (0, 1):
        decoded = xr.open_zarr(size_dir / "decoded" / DATE / f"{member}.zarr")
        assert decoded.geopotential.sizes["prediction_timedelta"] == 12
    assert (size_dir / "render" / "gallery" / DATE / "geopotential-500.png").stat().st_size
    assert (size_dir / "render" / "animation" / DATE / "0" / "geopotential-500.gif").exists()
    assert "rmse" in (size_dir / "evaluation" / "metrics.csv").read_text().lower()
    assert xr.open_zarr(size_dir / "statistics" / f"{DATE}.zarr", group="mean").geopotential.size
    logs = output_dir / "logs" / "odd.run-1"
    assert (logs / "generate" / "12h" / DATE / "0.log").exists()
    # Nothing was written under a name cut at a special character, here or in the workdir.
    assert sorted(path.name for path in (tmp_path / ODD).iterdir()) == sorted(
        ["models", "era 5 & data.zarr", "era 5 & data.stats.json", "results & more"]
    )
    assert {path.name for path in workdir.iterdir()} <= {"config.yaml", ".snakemake"}
    # A rerun has nothing to do: the odd paths are found again as they were written.
    rerun = run_snakemake(workdir, "-n", "all", "render", "evaluate", "statistics")
    assert "Nothing to be done" in rerun.stdout + rerun.stderr


def test_local_backend_plans_no_srun_and_says_what_runs_instead(tmp_path):
    """gpus beyond gpus_per_node with backend local: one node, torchrun --standalone, and a
    warning that says so; no srun and no --nodes in the planned command."""
    model_path = write_random_model(tmp_path / "models")
    config = tiny_config(model_path, output_dir=str(tmp_path / "out"))
    config["hardware"] |= {"gpus_per_node": 1, "gen": {"cpus": 1, "gpus": 2}}
    write_config(tmp_path, config)
    result = run_snakemake(tmp_path, "-n", "-p", env={"CUDA_VISIBLE_DEVICES": ""})
    output = result.stdout + result.stderr
    assert "torch.distributed.run --standalone --nproc-per-node 2" in output
    assert "srun" not in output and "--nnodes" not in output
    assert "backend local runs every job on this machine" in output
    assert "no NVIDIA GPU is visible" in output
    assert "nodes=2" not in output


def test_backend_local_refuses_the_slurm_executor_before_any_job(tmp_path):
    model_path = write_random_model(tmp_path / "models")
    write_config(tmp_path, tiny_config(model_path, output_dir=str(tmp_path / "out")))
    command = [str(SNAKEMAKE), "--executor", "slurm", "--jobs", "1", "--snakefile"]
    command += [str(REPO / "Snakefile"), "--configfile", str(tmp_path / "config.yaml")]
    result = subprocess.run(
        [*command, "--directory", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    assert "skyquilt config error: hardware.backend: 'local', but snakemake runs the 'slurm'" in (
        result.stderr
    )
    assert not (tmp_path / "out").exists()

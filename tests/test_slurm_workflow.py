"""The real workflow through `snakemake --profile profiles/slurm` on a live local SLURM cluster.

The tiny random-weight model (generation + aggregate: T = 12, 3 steps, one start date x 3
members) runs on the cluster of the `live_slurm` fixture (tests/slurm_fixture.py), and its
outputs are compared with a local run of the same config and seeds. The live tests run in CI or
with SKYQUILT_SLURM_TESTS=1 and are skipped otherwise; the dry-run test needs no cluster.
"""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import REPO, planned_jobs, run_snakemake, tiny_config, write_config

PROFILE = REPO / "profiles" / "slurm"
OUTPUTS = Path("results/prior/default/12h")
DATE = "2000-04-20T12"
MEMBERS = [f"{DATE}/{member}" for member in range(3)]
FAILING = f"{DATE}/1"
ACCOUNT = "skyquilt-test"


def members_config(model_path: Path, **overrides) -> dict:
    """The tiny config with one start date and three members: a member or two run at a time
    on the test cluster's two CPUs."""
    return tiny_config(
        model_path, start_dates=["2000-04-20 12h"], num_samples_per_date=3, **overrides
    )


def slurm_config(model_path: Path, partition: str, gpu_model: str) -> dict:
    """With the example's `hardware` keys, sized for the one-node test cluster."""
    return members_config(
        model_path,
        hardware={
            "backend": "slurm",
            "account": ACCOUNT,
            "gpus_per_node": 1,
            "gen": {
                "cpus": 1,
                "ram": "1GB",
                "time": "10:00",
                "partition": partition,
                "gpus": 1,
                "gpu_model": gpu_model,
            },
            "aggregate": {"cpus": 1, "ram": "1GB", "time": "10:00", "partition": partition},
        },
    )


def workflow_args(workdir: Path) -> tuple[str, ...]:
    return ("--snakefile", str(REPO / "Snakefile"), "--configfile", str(workdir / "config.yaml"))


def shard(directory: Path, member: str) -> xr.Dataset:
    return xr.open_zarr(directory / OUTPUTS / "shards" / f"{member}.zarr")


def assert_same_member(ours: Path, reference: Path, member: str) -> None:
    """Bit-identical latents and the same provenance (wall time aside)."""
    mine, theirs = shard(ours, member), shard(reference, member)
    assert np.array_equal(mine["latent"].values, theirs["latent"].values), member
    ignore = {"wall_time_s"}
    assert {k: v for k, v in mine.attrs.items() if k not in ignore} == {
        k: v for k, v in theirs.attrs.items() if k not in ignore
    }


def assert_same_aggregate(ours: Path, reference: Path) -> None:
    mine = xr.open_zarr(ours / OUTPUTS / "trajectories.zarr")
    theirs = xr.open_zarr(reference / OUTPUTS / "trajectories.zarr")
    assert np.array_equal(mine["latent"].values, theirs["latent"].values)
    assert mine["member"].values.tolist() == theirs["member"].values.tolist()
    assert mine["start_date"].values.tolist() == theirs["start_date"].values.tolist()


def shard_stamp(directory: Path, member: str) -> int:
    """Changes when the shard is rewritten (a new store is renamed into place)."""
    return (directory / OUTPUTS / "shards" / f"{member}.zarr" / ".zattrs").stat().st_mtime_ns


def generate_comment(member: str) -> str:
    """The plugin's --comment of a single generation job: rule and wildcards."""
    date, index = member.split("/")
    return f"rule_generate_wildcards_12_{date}_{index}"


@pytest.fixture(scope="module")
def local_run(live_slurm, tiny_model, tmp_path_factory) -> Path:
    """The same members generated and aggregated locally (`--cores 2`), for comparison."""
    workdir = tmp_path_factory.mktemp("local")
    write_config(workdir, members_config(tiny_model))
    run_snakemake(workdir, "--cores", "2")
    return workdir


@pytest.fixture
def cluster_workdir(live_slurm, tiny_model, tmp_path) -> Path:
    write_config(tmp_path, slurm_config(tiny_model, live_slurm.partition, live_slurm.gpu_type))
    return tmp_path


def test_dry_run_with_the_profile_shows_each_jobs_resources(tiny_model, tmp_path):
    """`snakemake --profile profiles/slurm -n` lists every job with the resources it will ask
    for, mapped from the example's `hardware` (no cluster needed)."""
    config = slurm_config(tiny_model, "a5000", "a100")
    config["hardware"]["gen"].update(cpus=8, ram="60GB", time="6:00:00")
    config["hardware"]["aggregate"].update(cpus=8, ram="32GB", time="4:00:00")
    write_config(tmp_path, config)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--profile", str(PROFILE)]
        + list(workflow_args(tmp_path)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert planned_jobs(out) == {"generate": 3, "aggregate": 1, "all": 1}

    resources = re.findall(r"^\s+resources: (.*)$", out, re.MULTILINE)
    jobs = [dict(item.split("=", 1) for item in line.split(", ")) for line in resources]
    gen = [r for r in jobs if "gpu" in r]
    assert len(gen) == 3
    expected_gen = {
        "slurm_account": ACCOUNT,
        "slurm_partition": "a5000",
        "cpus_per_task": "8",
        "mem_mb": "60000",
        "runtime": "360",  # "6:00:00" is six hours; "6:00" would be six minutes
        "gpu": "1",
        "gpu_model": "a100",
        "nodes": "1",
    }
    assert all(r.items() >= expected_gen.items() for r in gen), gen
    [aggregate] = [r for r in jobs if r.get("cpus_per_task") == "8" and "gpu" not in r]
    assert aggregate["mem_mb"] == "32000" and aggregate["runtime"] == "240"
    # printshellcmds (in the profile): the command each generation job will run.
    assert len(re.findall(r"^Shell command: .*scripts/generate\.py", out, re.MULTILINE)) == 3


def test_workflow_runs_through_slurm_as_one_array_and_equals_a_local_run(
    live_slurm, cluster_workdir, local_run
):
    run = live_slurm.snakemake(
        cluster_workdir,
        *workflow_args(cluster_workdir),
        "--slurm-array-jobs",
        "generate",
        timeout=400,
    ).check()
    print(f"\nSLURM end to end (3 members as one array + aggregate): {run.seconds:.1f} s")

    # The three members went to SLURM as one job array, the aggregate as a single job.
    [array] = run.array_submissions
    assert array["tasks"] == (1, 3)
    submitted = run.submitted_jobs
    assert len(submitted) == 4
    array_id = array["slurm_jobid"]
    tasks = {f"{array_id}_{task}" for task in range(1, 4)}
    assert {submitted[i] for i in array["snakemake_jobids"]} == tasks

    # The ids in the snakemake log are the ones SLURM knows: all COMPLETED, on the configured
    # partition and account, the members each with one GPU of the configured model.
    jobs = {job["jobid"]: job for job in live_slurm.squeue(run.run_id)}
    assert set(jobs) == set(submitted.values())
    assert {job["state"] for job in jobs.values()} == {"COMPLETED"}
    assert {job["partition"] for job in jobs.values()} == {live_slurm.partition}
    assert {job["account"] for job in jobs.values()} == {ACCOUNT}
    gpus = live_slurm.scontrol_job(f"{array_id}_2")["TresPerJob"]
    assert gpus == f"gres:gpu:{live_slurm.gpu_type}:1"

    # The sbatch options mapped from `hardware`.
    [array_call] = [call for call in run.sbatch_calls if "--array=" in call]
    print(f"sbatch options of the generation array: {array_call}")
    for option in (
        f"-A {ACCOUNT}",
        f"-p {live_slurm.partition}",
        "-t 10",
        "--cpus-per-task=1",
        "--nodes=1",
        f"--gpus={live_slurm.gpu_type}:1",
        "--array=1-3",
    ):
        assert option in array_call, array_call
    assert re.search(r"--mem 10\d\d ", array_call), array_call  # 1GB + the plugin's payload
    [aggregate_call] = [call for call in run.sbatch_calls if "--array=" not in call]
    assert "--ntasks=1" in aggregate_call and "--gpus" not in aggregate_call

    # SLURM's logs: one per array task and one for the aggregate, named by their job ids.
    logs = cluster_workdir / "logs" / "slurm"
    assert {p.stem for p in (logs / "rule_generate").glob("*.log")} == tasks
    [aggregate_id] = set(submitted.values()) - tasks
    assert list((logs / "rule_aggregate").rglob(f"{aggregate_id}.log"))

    # The same seeds give the same members, bit for bit, as the local run.
    for member in MEMBERS:
        assert_same_member(cluster_workdir, local_run, member)
    assert_same_aggregate(cluster_workdir, local_run)

    again = live_slurm.snakemake(cluster_workdir, *workflow_args(cluster_workdir), timeout=120)
    assert again.check().submitted_jobs == {}


def test_failed_member_reruns_alone_and_equals_the_uninterrupted_run(
    live_slurm, cluster_workdir, local_run
):
    """Profile defaults (one SLURM job per member); SKYQUILT_FAIL_MEMBER fails one member."""
    args = workflow_args(cluster_workdir)
    # --retries 0: the profile's retry would only fail the member a second time.
    failing = live_slurm.snakemake(
        cluster_workdir,
        *args,
        "--retries",
        "0",
        env={"SKYQUILT_FAIL_MEMBER": f"12/{FAILING}"},
        timeout=400,
    )
    print(f"\nrun with one failing member: {failing.seconds:.1f} s")
    assert failing.returncode != 0
    assert failing.array_submissions == []
    states = {job["comment"]: job["state"] for job in live_slurm.squeue(failing.run_id)}
    assert states == {
        generate_comment(member): "FAILED" if member == FAILING else "COMPLETED"
        for member in MEMBERS
    }  # and no aggregate was submitted
    date, index = FAILING.split("/")
    assert re.search(
        rf"Error in rule generate:\n(.*\n)*?\s+wildcards: size=12, date={date}, member={index}\n",
        failing.output,
    ), failing.output[-4000:]
    member_log = cluster_workdir / f"results/logs/default/generate/12h/{FAILING}.log"
    assert "SKYQUILT_FAIL_MEMBER asks member" in member_log.read_text()
    assert not (cluster_workdir / OUTPUTS / "shards" / f"{FAILING}.zarr").exists()
    kept = [member for member in MEMBERS if member != FAILING]
    stamps = {member: shard_stamp(cluster_workdir, member) for member in kept}
    for member in kept:
        assert_same_member(cluster_workdir, local_run, member)

    rerun = live_slurm.snakemake(cluster_workdir, *args, timeout=400).check()
    print(f"rerun of the failed member + aggregate: {rerun.seconds:.1f} s")
    comments = sorted(job["comment"] for job in live_slurm.squeue(rerun.run_id))
    assert comments == ["rule_aggregate_wildcards_12", generate_comment(FAILING)]
    assert len(rerun.submitted_jobs) == 2
    [generate_call] = [call for call in rerun.sbatch_calls if "rule_generate" in call]
    print(f"sbatch options of the generation job: {generate_call}")
    assert_same_member(cluster_workdir, local_run, FAILING)
    for member in kept:
        assert_same_member(cluster_workdir, local_run, member)
    assert stamps == {member: shard_stamp(cluster_workdir, member) for member in kept}
    assert_same_aggregate(cluster_workdir, local_run)

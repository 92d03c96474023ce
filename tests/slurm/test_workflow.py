"""The real workflow through `snakemake --profile profiles/slurm` on a live local SLURM cluster.

The end-to-end test runs the tiny demo (dataset -> autoencoder -> latents -> denoiser ->
2 members -> aggregate); the partial-rerun and grouping tests generate 3 members of the tiny
random-weight model (the partial rerun with the plug-in backbone of
skyquilt_testing.backbones, which fails one member on cue). Each compares what SLURM made with
a local run of the same config and seeds. They use the `live_slurm` fixture
(skyquilt_testing.slurm): they run in CI or with SKYQUILT_SLURM_TESTS=1 and are skipped
otherwise. The dry-run test needs no cluster.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr
from skyquilt_testing.backbones import CONSENT, FAIL_VARIABLE, FAILURE_MESSAGE
from skyquilt_testing.runs import (
    LOCAL_HARDWARE,
    assert_same_member,
    assert_same_outputs,
    members_of,
    one_date_config,
    prior,
)
from skyquilt_testing.slurm import ACCOUNT, slurm_hardware, workflow_args
from skyquilt_testing.workflow import (
    DEMO,
    MODEL,
    REPO,
    planned_jobs,
    run_snakemake,
    tiny_demo_config,
    write_config,
)

PROFILE = REPO / "profiles" / "slurm"
DATE = "2000-04-20T12"
FAILING = f"{DATE}/1"
DEMO_DATASET = Path(DEMO) / "era5_demo.zarr"
DEMO_WEIGHTS = [  # autoencoder, latent statistics, denoiser
    Path(MODEL).parents[4] / "weights.safetensors",
    Path(MODEL).parents[2] / "stats.safetensors",
    Path(MODEL) / "best.safetensors",
]


def shard_stamp(outputs: Path, member: str) -> int:
    """Changes when the shard is rewritten (a new store is renamed into place)."""
    return (outputs / "shards" / f"{member}.zarr" / ".zattrs").stat().st_mtime_ns


def generate_comment(member: str) -> str:
    """The plugin's --comment of a single generation job: rule and wildcards."""
    date, index = member.split("/")
    return f"rule_generate_wildcards_12_{date}_{index}"


@pytest.fixture
def local_demo(live_slurm, tmp_path_factory) -> Path:
    """The tiny demo built and sampled locally."""
    workdir = tmp_path_factory.mktemp("local_demo")
    write_config(workdir, tiny_demo_config(hardware=LOCAL_HARDWARE))
    run_snakemake(workdir, "--cores", "2")
    return workdir


def local_run(model_path: Path, workdir: Path, **overrides) -> Path:
    """Three members of `model_path`, generated and aggregated locally in `workdir`."""
    write_config(workdir, one_date_config(model_path, 3, **overrides))
    run_snakemake(workdir, "--cores", "2")
    return workdir


@pytest.fixture
def local_members(live_slurm, tiny_model, tmp_path_factory) -> Path:
    """Three members of the random-weight model, generated and aggregated locally."""
    return local_run(tiny_model, tmp_path_factory.mktemp("local_members"))


@pytest.fixture
def local_faulty_members(live_slurm, faulty_model, tmp_path_factory) -> Path:
    """Three members of the faulty model, made locally without a cue: the reference."""
    return local_run(faulty_model, tmp_path_factory.mktemp("local_faulty_members"), **CONSENT)


def test_dry_run_with_the_profile_shows_each_jobs_resources(tiny_model, tmp_path):
    """`snakemake --profile profiles/slurm -n` lists every job with the resources it will ask
    for, mapped from the example's `hardware`; off the cluster with hardware.preflight: false
    (no SLURM call: the a5000 partition need not exist)."""
    hardware = slurm_hardware("a5000", "a100") | {"preflight": False}
    hardware["gen"] = {**hardware["gen"], "cpus": 8, "ram": "60GB", "time": "6:00:00"}
    hardware["aggregate"] = {**hardware["aggregate"], "cpus": 8, "ram": "32GB", "time": "4:00:00"}
    write_config(tmp_path, one_date_config(tiny_model, 3, hardware=hardware))
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
    gen = [job for job in jobs if "gpu" in job]
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
    assert all(job.items() >= expected_gen.items() for job in gen), gen
    [aggregate] = [job for job in jobs if job.get("cpus_per_task") == "8" and "gpu" not in job]
    assert aggregate["mem_mb"] == "32000" and aggregate["runtime"] == "240"
    # printshellcmds (in the profile): the command each generation job will run.
    assert len(re.findall(r"^Shell command: .*scripts/generate\.py", out, re.MULTILINE)) == 3


def test_tiny_demo_runs_through_slurm_and_equals_a_local_run(live_slurm, local_demo, tmp_path):
    """The whole demo chain on SLURM, the members as one job array; every output is
    bit-identical to the local run's."""
    hardware = slurm_hardware(live_slurm.partition, live_slurm.gpu_type)
    write_config(tmp_path, tiny_demo_config(hardware=hardware))
    run = live_slurm.snakemake(
        tmp_path, *workflow_args(tmp_path), "--slurm-array-jobs", "generate", timeout=480
    ).check()
    print(f"\nSLURM end to end (tiny demo, 2 members as one array): {run.seconds:.1f} s")

    # Each demo step (the coarse model and the sanity check too) and the aggregate went to
    # SLURM as one job, the members as one array: 7 jobs and 2 array tasks.
    [array] = run.array_submissions
    assert array["tasks"] == (1, 2)
    submitted = run.submitted_jobs
    assert len(submitted) == 9
    array_id = array["slurm_jobid"]
    tasks = {f"{array_id}_1", f"{array_id}_2"}
    assert {submitted[i] for i in array["snakemake_jobids"]} == tasks

    # The ids in the snakemake log are the ones SLURM knows: all COMPLETED, on the test
    # partition; the members with the account and one GPU of the configured model.
    jobs = {job["jobid"]: job for job in live_slurm.squeue(run.run_id)}
    assert set(jobs) == set(submitted.values())
    assert {job["state"] for job in jobs.values()} == {"COMPLETED"}
    assert {job["partition"] for job in jobs.values()} == {live_slurm.partition}
    rules = sorted(job["comment"].split("_wildcards_")[0] for job in jobs.values())
    assert rules == [
        "rule_aggregate",
        "rule_demo_autoencoder",
        "rule_demo_coarse",
        "rule_demo_dataset",
        "rule_demo_denoiser",
        "rule_demo_latents",
        "rule_demo_sanity",
        "rule_generate",
        "rule_generate",
    ]
    assert {jobs[task]["account"] for task in tasks} == {ACCOUNT}
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
        "--array=1-2",
    ):
        assert option in array_call, array_call
    assert re.search(r"--mem 10\d\d ", array_call), array_call  # 1GB + the plugin's payload

    # SLURM's logs, named by the job ids: one per array task, one per single job.
    logs = tmp_path / "logs" / "slurm"
    assert {p.stem for p in (logs / "rule_generate").glob("*.log")} == tasks
    singles = set(submitted.values()) - tasks
    assert {p.stem for p in logs.glob("rule_*/**/*.log")} - tasks == singles

    # The same seeds give the same data, models and members, bit for bit, as a local run.
    dataset, local_dataset = (xr.open_zarr(d / DEMO_DATASET) for d in (tmp_path, local_demo))
    assert dataset.identical(local_dataset)
    for path in DEMO_WEIGHTS:
        assert (tmp_path / path).read_bytes() == (local_demo / path).read_bytes(), path
    assert members_of(prior(tmp_path, 8)) == ["2000-04-04T00/0", "2000-04-04T00/1"]
    assert_same_outputs(prior(tmp_path, 8), prior(local_demo, 8))


def test_failed_member_reruns_alone_and_equals_the_uninterrupted_run(
    live_slurm, faulty_model, local_faulty_members, tmp_path
):
    """Profile defaults (one SLURM job per member); the model's plug-in backbone fails one
    member at its first denoiser call (SKYQUILT_TESTING_FAIL names the member's shard)."""
    hardware = slurm_hardware(live_slurm.partition, live_slurm.gpu_type)
    write_config(tmp_path, one_date_config(faulty_model, 3, hardware=hardware, **CONSENT))
    outputs, reference = prior(tmp_path, 12), prior(local_faulty_members, 12)
    members = members_of(reference)
    args = workflow_args(tmp_path)
    failing_shard = f"results/prior/default/12h/shards/{FAILING}.zarr"
    # --retries 0: the profile's retry would only fail the member a second time.
    failing = live_slurm.snakemake(
        tmp_path, *args, "--retries", "0", env={FAIL_VARIABLE: f"{failing_shard}@1"}
    )
    print(f"\nrun with one failing member: {failing.seconds:.1f} s")
    assert failing.returncode != 0
    assert failing.array_submissions == []
    states = {job["comment"]: job["state"] for job in live_slurm.squeue(failing.run_id)}
    assert states == {
        generate_comment(member): "FAILED" if member == FAILING else "COMPLETED"
        for member in members
    }, failing.output[-6000:]  # and no aggregate was submitted
    date, index = FAILING.split("/")
    assert re.search(
        rf"Error in rule generate:\n(.*\n)*?\s+wildcards: size=12, date={date}, member={index}\n",
        failing.output,
    ), failing.output[-4000:]
    member_log = tmp_path / f"results/logs/default/generate/12h/{FAILING}.log"
    assert f"{FAILURE_MESSAGE} 1 of {failing_shard}" in member_log.read_text()
    kept = [member for member in members if member != FAILING]
    assert members_of(outputs) == kept
    for member in kept:
        assert_same_member(outputs, reference, member)
    stamps = {member: shard_stamp(outputs, member) for member in kept}

    rerun = live_slurm.snakemake(tmp_path, *args).check()
    print(f"rerun of the failed member + aggregate: {rerun.seconds:.1f} s")
    comments = sorted(job["comment"] for job in live_slurm.squeue(rerun.run_id))
    assert comments == ["rule_aggregate_wildcards_12", generate_comment(FAILING)]
    assert len(rerun.submitted_jobs) == 2
    [generate_call] = [call for call in rerun.sbatch_calls if "rule_generate" in call]
    print(f"sbatch options of the generation job: {generate_call}")
    assert_same_outputs(outputs, reference)
    assert stamps == {member: shard_stamp(outputs, member) for member in kept}

    again = live_slurm.snakemake(tmp_path, *args, timeout=120).check()
    assert again.submitted_jobs == {}


def test_grouped_members_run_as_one_slurm_job_and_equal_a_local_run(
    live_slurm, tiny_model, local_members, tmp_path
):
    """The job grouping docs/slurm.md gives for short members: the 3 generation jobs go to
    SLURM as one job that asks for one GPU and the time of all three, then the aggregate."""
    hardware = slurm_hardware(live_slurm.partition, live_slurm.gpu_type)
    write_config(tmp_path, one_date_config(tiny_model, 3, hardware=hardware))
    grouping = (
        "--groups generate=members --group-components members=3 "
        "--resources gpu=1 mem_mb=4000 --set-resource-scopes gpu=local"
    ).split()
    run = live_slurm.snakemake(tmp_path, *workflow_args(tmp_path), *grouping).check()
    print(f"\n3 members as one grouped SLURM job, then the aggregate: {run.seconds:.1f} s")

    jobs = live_slurm.squeue(run.run_id)
    assert sorted(job["comment"] for job in jobs) == [
        "rule_aggregate_wildcards_12",
        "rule_members_generate",
    ]
    assert {job["state"] for job in jobs} == {"COMPLETED"}
    [group] = [job for job in jobs if job["comment"] == "rule_members_generate"]
    [group_line] = [line for line in run.output.splitlines() if "group_members_generate" in line
                    and line.startswith("sbatch call")]  # fmt: skip
    assert group_line.count("generate:size=12,date=2000-04-20T12,member=") == 3, group_line
    [group_call] = [call for call in run.sbatch_calls if "group_members_generate" in call]
    print(f"sbatch options of the group: {group_call}")
    for option in (f"--gpus={live_slurm.gpu_type}:1", "-t 30", "--cpus-per-task=1", "--nodes=1"):
        assert option in group_call, group_call
    assert re.search(r"--mem 10\d\d ", group_call), group_call  # one member's, as they take turns
    assert (tmp_path / f"logs/slurm/group_members_generate/{group['jobid']}.log").is_file()
    for member in members_of(prior(local_members, 12)):
        assert (tmp_path / f"results/logs/default/generate/12h/{member}.log").is_file()
    assert_same_outputs(prior(tmp_path, 12), prior(local_members, 12))

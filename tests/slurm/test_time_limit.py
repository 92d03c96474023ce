"""A member longer than its SLURM time limit, through `snakemake --profile profiles/slurm` on the
live local cluster: each job is warned before its limit, checkpoints and ends; Snakemake
resubmits it and the next job resumes, and the member equals an uninterrupted local run bit for
bit.

This is the suite's longest test (a few minutes of waiting on time limits): it starts first, on
a worker of its own, and the other SLURM tests run beside it (tests/conftest.py). Uses the
`live_slurm` fixture (skyquilt_testing.slurm): runs in CI or with SKYQUILT_SLURM_TESTS=1,
skipped otherwise.
"""

import re

import pytest
from skyquilt_testing.backbones import CONSENT, SLOW_VARIABLE
from skyquilt_testing.runs import assert_same_outputs, one_date_config, prior
from skyquilt_testing.slurm import slurm_hardware, workflow_args
from skyquilt_testing.workflow import run_snakemake, write_config

pytestmark = pytest.mark.starts_first

DATE = "2000-04-20T12"

# A member that needs at least 3 SLURM jobs: 56 LMS steps of 2 s each (the plug-in backbone
# sleeps before every denoiser call) against a 2-minute time limit. SLURM warns a job 60 s before
# its limit (skyquilt.planning.slurm.launcher.time_limit_warning), and, as it checks time limits
# every 30 s, up to 35 s earlier still: a job, after some 10 s of start-up, samples for 15 to 50 s,
# one step more at most. Two jobs never cover the 112 s; up to about 8 may be needed.
SLOW_STEPS, SLOW_SECONDS = 56, 2
TIME_LIMITED_RETRIES = 9


def test_member_longer_than_its_time_limit_resumes_across_slurm_jobs_bit_identical(
    live_slurm, faulty_model, tmp_path_factory
):
    """Each job is warned before its time limit, checkpoints, ends with status 75 and is
    resubmitted by Snakemake; the next resumes where it stopped, and the member equals an
    uninterrupted local run bit for bit."""
    diffusion = {"num_steps": SLOW_STEPS, "sampler": {"type": "lms", "config": {}}}
    reference = tmp_path_factory.mktemp("uninterrupted")
    write_config(reference, one_date_config(faulty_model, 1, diffusion=diffusion, **CONSENT))
    run_snakemake(reference, "--cores", "1")
    workdir = tmp_path_factory.mktemp("time_limited")
    hardware = slurm_hardware(live_slurm.partition, live_slurm.gpu_type)
    hardware["gen"]["time"] = "2:00"
    config = one_date_config(faulty_model, 1, hardware=hardware, diffusion=diffusion, **CONSENT)
    write_config(workdir, config)
    shard = f"results/prior/default/12h/shards/{DATE}/0.zarr"
    run = live_slurm.snakemake(
        workdir,
        *workflow_args(workdir),
        "--retries",
        str(TIME_LIMITED_RETRIES),
        env={SLOW_VARIABLE: f"{shard}@{SLOW_SECONDS}"},
        timeout=900,
    ).check()

    jobs = sorted(
        (
            job
            for job in live_slurm.squeue(run.run_id)
            if job["comment"].startswith("rule_generate")
        ),
        key=lambda job: int(job["jobid"]),
    )
    # The failed attempts' logs are in Snakemake's output (show-failed-logs); the last is on disk.
    final_log = (workdir / f"results/logs/default/generate/12h/{DATE}/0.log").read_text()
    stops = [
        int(step)
        for step in re.findall(rf"SIGURG: stopped after step (\d+) of {SLOW_STEPS}", run.output)
    ]
    resumed = [
        int(step) for step in re.findall(r"resumed from step (\d+) of", run.output + final_log)
    ]
    print(
        f"\nmember of {SLOW_STEPS * SLOW_SECONDS} s sampling, time limit 2 min: {run.seconds:.1f} s"
    )
    for job, first, last in zip(jobs, [0, *resumed], [*stops, SLOW_STEPS], strict=False):
        print(f"SLURM job {job['jobid']} ({job['state']}): steps {first} -> {last}")
    assert len(jobs) >= 3
    assert [job["state"] for job in jobs] == ["FAILED"] * (len(jobs) - 1) + ["COMPLETED"]
    assert resumed == stops and stops == sorted(set(stops)) and 0 < stops[0]
    assert run.output.count("received SIGURG") == len(stops)
    assert "Trying to restart job" in run.output
    [call] = {call for call in run.sbatch_calls if "rule_generate" in call}
    assert "--signal=URG@60" in call and "-t 2" in call, call
    assert_same_outputs(prior(workdir, 12), prior(reference, 12))
    assert not list((workdir / "results/checkpoints").rglob("*.pt"))

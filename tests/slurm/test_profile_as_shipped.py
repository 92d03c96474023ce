"""profiles/slurm exactly as shipped (no status, polling or resource overrides) with the real
workflow, on the live local cluster without accounting storage and with it (slurmdbd with a
private MariaDB): the run either finishes or stops before submitting anything, with one line
that says what to change. While it waits on SLURM it logs its jobs by state.

Uses `live_slurm` and `live_slurm_accounting` (skyquilt_testing.slurm): runs in CI or with
SKYQUILT_SLURM_TESTS=1, skipped otherwise. Tiny settings: T = 12, one start date, 2 members.
"""

import dataclasses
import re
import shutil
from pathlib import Path

from skyquilt_testing.slurm import ACCOUNT, PROFILE, slurm_hardware
from skyquilt_testing.workflow import REPO, tiny_config, write_config

NO_ACCOUNTING = (
    "skyquilt config error: slurm-status-command: sacct: the executor would ask sacct for job "
    "states, but this cluster has no accounting storage (AccountingStorageType="
    "accounting_storage/none), so no job would ever be seen to finish; set "
    "`slurm-status-command: squeue` in the profile (profiles/slurm/config.yaml) (MinJobAge = "
    "900 s is enough)"
)
# The queue summary: the run's jobs that SLURM lists, by state.
SUMMARY = re.compile(r"^skyquilt: waiting on SLURM jobs of run (\S+): (\d+ [A-Z]+.*)$", re.M)


def shipped_config(workdir: Path, model: Path, partition: str, gpu_type: str, **hardware) -> None:
    """Two members of one start date, a queue summary every 10 s."""
    hardware = slurm_hardware(partition, gpu_type) | {"queue_summary_every": 10} | hardware
    config = tiny_config(
        model, start_dates=["2000-04-20 12h"], num_samples_per_date=2, hardware=hardware
    )
    write_config(workdir, config)


def workflow_args(workdir: Path) -> tuple[str, ...]:
    return ("--snakefile", str(REPO / "Snakefile"), "--configfile", str(workdir / "config.yaml"))


def assert_finished_with_summaries(run, workdir: Path) -> None:
    """Every member and the aggregate written; a queue summary of this run at least once."""
    outputs = workdir / "results" / "prior" / "default" / "12h"
    assert len(list((outputs / "shards").glob("*/*.zarr"))) == 2
    assert (outputs / "trajectories.zarr").is_dir()
    summaries = SUMMARY.findall(run.output)
    assert summaries, run.output[-4000:]
    assert {run_id for run_id, _ in summaries} == {run.run_id}
    print("queue summaries:", *(states for _, states in summaries), sep="\n  ")


def test_without_accounting_the_shipped_profile_stops_before_submitting(
    live_slurm, tiny_model, tmp_path
):
    """sacct (the plugin's default) cannot see jobs finish here: refused on -n and before any
    sbatch, with the fix; with the fix written into the profile the preflight passes (runs
    with `slurm-status-command: squeue` finish: tests/slurm/test_workflow.py)."""
    shipped_config(tmp_path, tiny_model, live_slurm.partition, live_slurm.gpu_type)
    args = workflow_args(tmp_path)
    for dry_run in (("-n",), ()):
        run = live_slurm.snakemake(tmp_path, *args, *dry_run, as_shipped=True, timeout=120)
        print(f"\nshipped profile {' '.join(dry_run)}, no accounting: {run.seconds:.1f} s")
        assert run.returncode == 1, run.output[-3000:]
        assert NO_ACCOUNTING in run.output.splitlines(), run.output[-3000:]
        assert run.submitted_jobs == {} and "sbatch" not in run.output

    profile = tmp_path / "profile"
    shutil.copytree(PROFILE, profile)
    with (profile / "config.yaml").open("a") as file:
        file.write("slurm-status-command: squeue\n")  # the fix, as the line says
    fixed = dataclasses.replace(live_slurm, profile=profile, runs=[])
    run = fixed.snakemake(tmp_path, *args, "-n", as_shipped=True, timeout=120).check()
    assert "job states via squeue (accounting accounting_storage/none" in run.output


def test_a_run_that_cannot_see_its_jobs_finish_still_shows_them_by_state(
    live_slurm, tiny_model, tmp_path
):
    """The hang the preflight prevents, let through (hardware.preflight: false): SLURM has
    finished the member, snakemake keeps waiting on sacct, and the queue summaries say so."""
    shipped_config(
        tmp_path, tiny_model, live_slurm.partition, live_slurm.gpu_type, preflight=False,
        queue_summary_every=5,
    )  # fmt: skip
    member = "results/prior/default/12h/shards/2000-04-20T12/0.zarr"
    run = live_slurm.snakemake(
        tmp_path, member, *workflow_args(tmp_path), as_shipped=True, timeout=75
    )
    assert run.returncode == -9, run.output[-3000:]  # still waiting when killed
    assert (tmp_path / member).is_dir()
    summaries = [states for _, states in SUMMARY.findall(run.output)]
    print("\nqueue summaries of a run that waits forever:", *summaries, sep="\n  ")
    assert summaries[-3:] == ["1 COMPLETED"] * 3, run.output[-3000:]


def test_with_accounting_the_shipped_profile_runs_with_sacct(
    live_slurm_accounting, tiny_model, tmp_path
):
    cluster = live_slurm_accounting
    shipped_config(tmp_path, tiny_model, cluster.partition, cluster.gpu_type)
    run = cluster.snakemake(tmp_path, *workflow_args(tmp_path), as_shipped=True, timeout=400)
    print(f"\nshipped profile, slurmdbd + MariaDB: {run.check().seconds:.1f} s")
    [preflight] = [line for line in run.output.splitlines() if "SLURM preflight passed" in line]
    print(preflight)
    assert "job states via sacct (accounting accounting_storage/slurmdbd" in preflight
    jobs = cluster.sacct(run.run_id)
    assert len(jobs) == 3, jobs  # two members and the aggregate
    assert {(job["state"], job["account"]) for job in jobs} == {("COMPLETED", ACCOUNT)}
    assert_finished_with_summaries(run, tmp_path)


def test_with_accounting_an_account_the_user_cannot_charge_stops_the_dry_run(
    live_slurm_accounting, tiny_model, tmp_path
):
    cluster = live_slurm_accounting
    shipped_config(tmp_path, tiny_model, cluster.partition, cluster.gpu_type, account="nope")
    run = cluster.snakemake(tmp_path, *workflow_args(tmp_path), "-n", as_shipped=True)
    assert run.returncode == 1
    assert (
        "skyquilt config error: hardware.account: 'nope' is not an account that user root can "
        f"charge on this cluster (accounts: root, {ACCOUNT}); set hardware.account to one of them"
    ) in run.output.splitlines(), run.output[-3000:]

"""profiles/slurm exactly as shipped (no status, polling or resource overrides) with the real
workflow, on the live local cluster without accounting storage: the run stops before submitting
anything, with one line that says what to change; let through, it shows its jobs by state while
it waits on SLURM. (With accounting storage: tests/slurm/test_accounting.py.)

Uses `live_slurm` (skyquilt_testing.slurm): runs in CI or with SKYQUILT_SLURM_TESTS=1, skipped
otherwise. Tiny settings: T = 12, one start date, 2 members.
"""

import dataclasses
import shutil

from skyquilt_testing.slurm import PROFILE, QUEUE_SUMMARY, shipped_config, workflow_args

NO_ACCOUNTING = (
    "skyquilt config error: slurm-status-command: sacct: the executor would ask sacct for job "
    "states, but this cluster has no accounting storage (AccountingStorageType="
    "accounting_storage/none), so no job would ever be seen to finish; set "
    "`slurm-status-command: squeue` in the profile (profiles/slurm/config.yaml) (MinJobAge = "
    "900 s is enough)"
)


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


def summaries_of(output: str) -> list[str]:
    """The job states of every queue summary in a run's output so far."""
    return [states for _, states in QUEUE_SUMMARY.findall(output)]


def test_a_run_that_cannot_see_its_jobs_finish_still_shows_them_by_state(
    live_slurm, tiny_model, tmp_path
):
    """The hang the preflight prevents, let through (hardware.preflight: false): SLURM has
    finished the member, snakemake keeps waiting on sacct, and the queue summaries say so.

    The run is stopped once three summaries in a row have shown the member COMPLETED, however
    long that takes on this machine; a run that ended by itself, or never showed that before the
    safety timeout, fails the test."""
    shipped_config(
        tmp_path, tiny_model, live_slurm.partition, live_slurm.gpu_type, preflight=False,
        queue_summary_every=5,
    )  # fmt: skip
    member = "results/prior/default/12h/shards/2000-04-20T12/0.zarr"
    run = live_slurm.snakemake(
        tmp_path,
        member,
        *workflow_args(tmp_path),
        as_shipped=True,
        timeout=600,
        stop_when=lambda output: summaries_of(output)[-3:] == ["1 COMPLETED"] * 3,
    )
    summaries = summaries_of(run.output)
    print("\nqueue summaries of a run that waits forever:", *summaries, sep="\n  ")
    assert run.returncode == -9, run.output[-3000:]  # stopped, still waiting
    assert "[live_slurm] killed after" not in run.output, run.output[-3000:]
    assert (tmp_path / member).is_dir()
    assert summaries[-3:] == ["1 COMPLETED"] * 3, run.output[-3000:]

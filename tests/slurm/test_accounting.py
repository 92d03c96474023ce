"""profiles/slurm exactly as shipped (no status, polling or resource overrides) with the real
workflow, on the live local cluster with accounting storage (slurmdbd with a private MariaDB):
the shipped profile asks sacct for job states and the run finishes, showing its jobs by state
while it waits; an account the user cannot charge stops the dry run with one line.

Uses `live_slurm_accounting` (skyquilt_testing.slurm), which restarts the cluster with
accounting storage for this module while no other test uses it: runs in CI or with
SKYQUILT_SLURM_TESTS=1, skipped otherwise. Tiny settings: T = 12, one start date, 2 members.
"""

from skyquilt_testing.slurm import ACCOUNT, QUEUE_SUMMARY, shipped_config, workflow_args


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
    # Every member and the aggregate written; a queue summary of this run at least once.
    outputs = tmp_path / "results" / "prior" / "default" / "12h"
    assert len(list((outputs / "shards").glob("*/*.zarr"))) == 2
    assert (outputs / "trajectories.zarr").is_dir()
    summaries = QUEUE_SUMMARY.findall(run.output)
    assert summaries, run.output[-4000:]
    assert {run_id for run_id, _ in summaries} == {run.run_id}
    print("queue summaries:", *(states for _, states in summaries), sep="\n  ")


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

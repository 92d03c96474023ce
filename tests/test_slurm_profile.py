"""profiles/slurm on a live local SLURM cluster, with a throwaway three-member workflow.

The live test needs the `live_slurm` fixture (tests/slurm_fixture.py, imported in conftest.py);
it runs in CI or with SKYQUILT_SLURM_TESTS=1 and is skipped otherwise.
"""

import re
import subprocess
import sys
from pathlib import Path

PROFILE = Path(__file__).resolve().parents[1] / "profiles" / "slurm"

# Three members of one rule (one GPU each, submitted as one job array) and an aggregate. With a
# file FAIL in the working directory, whichever member runs as array task 2 fails.
SNAKEFILE = """
localrules: all

rule all:
    input: "agg.txt"

rule generate:
    output: "gen/{i}.txt"
    resources: gpu=1, mem_mb=200, runtime=5
    shell:
        "if [ -e FAIL ] && [ ${{SLURM_ARRAY_TASK_ID:-0}} = 2 ]; then exit 3; fi; "
        "echo member={wildcards.i} job=$SLURM_JOB_ID "
        "array=${{SLURM_ARRAY_JOB_ID:-none}}_${{SLURM_ARRAY_TASK_ID:-none}} "
        "cuda=${{CUDA_VISIBLE_DEVICES:-none}} > {output}"

rule aggregate:
    input: expand("gen/{i}.txt", i=range(3))
    output: "agg.txt"
    resources: mem_mb=200, runtime=5, slurm_account="skyquilt"
    shell: "cat {input} > {output}; echo aggregate job=$SLURM_JOB_ID >> {output}"
"""


def _write_workflow(directory: Path) -> None:
    (directory / "Snakefile").write_text(SNAKEFILE)


def test_profile_dry_run_shows_resources(tmp_path):
    """The profile's keys are all accepted by snakemake and the plugin (no cluster needed)."""
    _write_workflow(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--profile", str(PROFILE)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert re.search(r"^generate\s+3$", out, re.MULTILINE), out
    assert "gpu=1" in out and "slurm_account=skyquilt" in out
    assert "runtime=60" in out  # the profile's default-resources reach rules without their own


def test_tiny_workflow_runs_through_slurm_profile(live_slurm, tmp_path):
    _write_workflow(tmp_path)
    run = live_slurm.snakemake(tmp_path, timeout=400).check()
    print(f"\nsnakemake --profile profiles/slurm (3 members + aggregate): {run.seconds:.1f} s")

    # Outputs came from SLURM jobs: each member ran as a task of one array with one fake GPU.
    members = [(tmp_path / "gen" / f"{i}.txt").read_text() for i in range(3)]
    [array] = run.array_submissions
    assert array["tasks"] == (1, 3)
    array_id = array["slurm_jobid"]
    tasks = sorted(m.split("array=")[1].split()[0] for m in members)
    assert tasks == [f"{array_id}_{t}" for t in (1, 2, 3)]
    assert all("cuda=none" not in m for m in members)
    aggregate = (tmp_path / "agg.txt").read_text()
    assert aggregate.startswith("".join(members))
    assert "aggregate job=" in aggregate

    # The ids in the snakemake log are the ones SLURM knows, all COMPLETED, named by the run id.
    submitted = run.submitted_jobs
    assert len(submitted) == 4
    jobs = {j["jobid"]: j for j in live_slurm.squeue(run.run_id)}
    assert set(submitted.values()) == set(jobs)
    assert {j["state"] for j in jobs.values()} == {"COMPLETED"}
    assert {j["partition"] for j in jobs.values()} == {live_slurm.partition}
    [single] = [j for j in jobs.values() if "_" not in j["jobid"]]
    assert single["account"] == "skyquilt"
    assert live_slurm.scontrol_job(f"{array_id}_1")["TresPerJob"] == "gres:gpu:1"

    # The sbatch options the plugin used.
    [array_call] = [c for c in run.sbatch_calls if "--array=" in c]
    for option in (f"-p {live_slurm.partition}", "--gpus=1", "--array=1-3", "-t 5"):
        assert option in array_call, array_call
    assert re.search(r"--mem 20\d ", array_call), array_call  # 200 + the plugin's array payload
    [single_call] = [c for c in run.sbatch_calls if "--array=" not in c]
    assert "-A skyquilt" in single_call and "--ntasks=1" in single_call

    # SLURM logs go to the profile's slurm-logdir and are kept.
    logs = tmp_path / "logs" / "slurm"
    assert sorted(p.name for p in (logs / "rule_generate").glob("*.log")) == [
        f"{array_id}_{t}.log" for t in (1, 2, 3)
    ]
    assert list((logs / "rule_aggregate").rglob(f"{single['jobid']}.log"))

    # Nothing left to do: a second run submits nothing.
    again = live_slurm.snakemake(tmp_path, timeout=120).check()
    assert again.submitted_jobs == {}


def test_failed_array_member_reruns_alone(live_slurm, tmp_path):
    """One member of the array fails; the others are kept; the rerun submits only it + aggregate."""
    _write_workflow(tmp_path)
    (tmp_path / "FAIL").touch()
    # --retries 0: the profile's retry would resubmit the member as a plain job, which passes.
    first = live_slurm.snakemake(tmp_path, "--retries", "0", timeout=400)
    print(f"\nrun with one failing member: {first.seconds:.1f} s")
    assert first.returncode != 0
    [array] = first.array_submissions
    failed_jobid = array["snakemake_jobids"][1]  # array task 2
    states = {j["jobid"]: j["state"] for j in live_slurm.squeue(first.run_id)}
    aid = array["slurm_jobid"]
    assert states == {f"{aid}_1": "COMPLETED", f"{aid}_2": "FAILED", f"{aid}_3": "COMPLETED"}
    assert re.search(rf"Error in rule generate:\n(.*\n)*?\s+jobid: {failed_jobid}\n", first.output)
    present = sorted(p.name for p in (tmp_path / "gen").glob("*.txt"))
    assert len(present) == 2  # task 1's member survives task 2's failure (keep-incomplete)
    assert not (tmp_path / "agg.txt").exists()

    (tmp_path / "FAIL").unlink()
    second = live_slurm.snakemake(tmp_path, timeout=400).check()
    print(f"rerun of the failed member + aggregate: {second.seconds:.1f} s")
    assert second.array_submissions == []  # a single member is a plain job
    assert len(second.submitted_jobs) == 2  # that member and the aggregate
    assert len(list((tmp_path / "gen").glob("*.txt"))) == 3
    assert (tmp_path / "agg.txt").exists()

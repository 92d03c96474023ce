"""Job arrays of profiles/slurm when one member fails, on a live local SLURM cluster.

Arrays are off in the profile and on with `--slurm-array-jobs generate --keep-incomplete`
(docs/slurm.md). A throwaway three-member workflow makes exactly array task 2 fail,
which the real workflow cannot choose: the plugin orders the members of an array arbitrarily.
The real workflow runs in tests/slurm/test_workflow.py. Needs the `live_slurm` fixture
(skyquilt_testing.slurm): runs in CI or with SKYQUILT_SLURM_TESTS=1, skipped otherwise.
"""

import re
from pathlib import Path

ARRAYS = ("--slurm-array-jobs", "generate", "--keep-incomplete")

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


def test_failed_array_task_keeps_the_other_members(live_slurm, tmp_path):
    """Array task 2 fails; tasks 1 and 3 complete and their outputs stay.

    --keep-incomplete: in plugin 2.8.0 the failing task also reports the array's first member as
    failed (issue #447); without it Snakemake would delete that member's finished output. The
    rerun of the missing member is the same as without arrays (tests/slurm/test_workflow.py).
    """
    _write_workflow(tmp_path)
    (tmp_path / "FAIL").touch()
    # --retries 0: the profile's retry would resubmit the member as a plain job, which passes.
    run = live_slurm.snakemake(tmp_path, *ARRAYS, "--retries", "0", timeout=400)
    print(f"\nrun with a failing array task: {run.seconds:.1f} s")
    assert run.returncode != 0
    [array] = run.array_submissions
    failed_jobid = array["snakemake_jobids"][1]  # array task 2
    states = {j["jobid"]: j["state"] for j in live_slurm.squeue(run.run_id)}
    aid = array["slurm_jobid"]
    assert states == {f"{aid}_1": "COMPLETED", f"{aid}_2": "FAILED", f"{aid}_3": "COMPLETED"}
    assert re.search(rf"Error in rule generate:\n(.*\n)*?\s+jobid: {failed_jobid}\n", run.output)
    outputs = sorted((tmp_path / "gen").glob("*.txt"))
    assert len(outputs) == 2  # task 1's member survives task 2's failure (keep-incomplete)
    assert all("array=" + aid in path.read_text() for path in outputs)
    assert not (tmp_path / "agg.txt").exists()

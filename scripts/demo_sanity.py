"""Rule demo_sanity: judge decoded composed trajectories of the demo model against the held-out
states (sanity.json, sanity.csv). Every missed target is a warning in the rule's log and on the
console; the traceback goes to the log if the job fails.
"""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0], capture_stderr=False) as log:  # noqa: F821
    import json
    import sys

    import torch

    from skyquilt.demo.sanity import Trajectories, sanity_check
    from skyquilt.io.atomic import atomic_file, write_json

    torch.set_num_threads(snakemake.threads)  # noqa: F821
    report, rows = sanity_check(
        snakemake.input.config.rsplit("/", 1)[0],  # noqa: F821
        snakemake.input.dataset,  # noqa: F821
        tuple(snakemake.params.held_out),  # noqa: F821
        Trajectories(**snakemake.params.sampling),  # noqa: F821
    )
    with atomic_file(snakemake.output.table) as temporary:  # noqa: F821
        rows.to_csv(temporary, index=False)
    write_json(report, snakemake.output.sanity)  # noqa: F821
    print(json.dumps(report, indent=2), file=log)
    if report["passed"]:
        print("the demo model meets every target", file=log)
    for line in report["misses"]:
        for stream in (log, sys.stderr):
            print(f"WARNING: the demo model misses a target: {line}", file=stream)

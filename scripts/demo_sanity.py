"""Rule demo_sanity: judge decoded composed trajectories of the demo model against the held-out
states (sanity.json, sanity.csv). Every missed target is a warning in the rule's log and on the
console; the traceback goes to the log if the job fails.
"""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0], capture_stderr=False) as log:  # noqa: F821
    from skyquilt.jobs.demo import run_demo_sanity

    run_demo_sanity(
        config_file=snakemake.input.config,  # noqa: F821
        dataset=snakemake.input.dataset,  # noqa: F821
        held_out=list(snakemake.params.held_out),  # noqa: F821
        sampling=snakemake.params.sampling,  # noqa: F821
        outputs={"sanity": snakemake.output.sanity, "table": snakemake.output.table},  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
        log=log,
    )

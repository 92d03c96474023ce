"""Rule demo_dataset: simulate the demo dataset, write it and its normalisation statistics.

Progress (tqdm) goes to the console, a summary to the rule's log, and so does the traceback
if the job fails.
"""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0], capture_stderr=False) as log:  # noqa: F821
    from skyquilt.jobs.demo import run_demo_dataset

    run_demo_dataset(
        settings=snakemake.params.settings,  # noqa: F821
        output=snakemake.output.dataset,  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
        log=log,
    )

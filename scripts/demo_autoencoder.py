"""Rule demo_autoencoder: install the shipped autoencoder when it was trained on this dataset
with these settings (skyquilt.demo.pretrained), else train it; write its directory + metrics.

Progress (tqdm) goes to the console, the metrics to the rule's log, and so does the
traceback if the job fails.
"""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0], capture_stderr=False) as log:  # noqa: F821
    from skyquilt.jobs.demo import run_demo_autoencoder

    run_demo_autoencoder(
        dataset=snakemake.input.dataset,  # noqa: F821
        config_file=snakemake.output.config,  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
        log=log,
        **dict(snakemake.params.items()),  # settings, held_out, pretrained, training  # noqa: F821
    )

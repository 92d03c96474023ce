"""Rule demo_latents: encode the whole dataset into latent_dir with the latent statistics.

Progress (tqdm) goes to the console, a summary to the rule's log, and so does the traceback
if the job fails.
"""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0], capture_stderr=False) as log:  # noqa: F821
    from skyquilt.jobs.demo import run_demo_latents

    run_demo_latents(
        dataset=snakemake.input.dataset,  # noqa: F821
        autoencoder_config=snakemake.input.config,  # noqa: F821
        stats=snakemake.output.stats,  # noqa: F821
        held_out=list(snakemake.params.held_out),  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
        log=log,
    )

"""Latent statistics job: latent mean, std and member checksums of one trajectory size."""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0]):  # noqa: F821
    from skyquilt.jobs.ensemble_statistics import run_latent_statistics

    run_latent_statistics(
        trajectories=snakemake.input.trajectories,  # noqa: F821
        output=snakemake.output[0],  # noqa: F821
    )

"""Aggregate job: merge the member shards of one trajectory size (rule `aggregate`)."""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0]):  # noqa: F821
    from skyquilt.jobs.aggregate import run_aggregate
    from skyquilt.jobs.arguments import run_settings

    run_aggregate(
        shards=list(snakemake.input),  # noqa: F821
        output=snakemake.output[0],  # noqa: F821
        settings=run_settings(snakemake.params.settings),  # noqa: F821
        size=int(snakemake.wildcards.size),  # noqa: F821
        start_dates=list(snakemake.params.start_dates),  # noqa: F821
        members=list(snakemake.params.members),  # noqa: F821
        latent_shape=tuple(snakemake.params.latent_shape),  # noqa: F821
    )

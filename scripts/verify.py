"""Verify job: re-check every finished shard and aggregate; move the damaged aside (rule
`verify`)."""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0]):  # noqa: F821
    from skyquilt.jobs.arguments import run_settings
    from skyquilt.jobs.verify import run_verify

    run_verify(
        settings=run_settings(snakemake.params.settings),  # noqa: F821
        sizes=list(snakemake.params.sizes),  # noqa: F821
        start_dates=list(snakemake.params.start_dates),  # noqa: F821
        members=list(snakemake.params.members),  # noqa: F821
        latent_shape=tuple(snakemake.params.latent_shape),  # noqa: F821
        shards=list(snakemake.params.shards),  # noqa: F821
        trajectories=list(snakemake.params.trajectories),  # noqa: F821
        prior_dir=snakemake.params.prior_dir,  # noqa: F821
        damaged_dir=snakemake.params.damaged_dir,  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
        recorded=list(snakemake.params.recorded),  # noqa: F821
    )

"""Statistics job: ensemble statistics of one (size, start date) (rule `ensemble_statistics`)."""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0]):  # noqa: F821
    from skyquilt.jobs.ensemble_statistics import run_statistics

    run_statistics(
        decoded=list(snakemake.input.decoded),  # noqa: F821
        output=snakemake.output[0],  # noqa: F821
        quantiles=list(snakemake.params.quantiles),  # noqa: F821
        block_mb=snakemake.params.block_mb,  # noqa: F821
    )

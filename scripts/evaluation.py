"""Evaluation job: scores, spectra and seam continuity of one trajectory size."""

from skyquilt.jobs.logs import configure_logging, job_log

with job_log(snakemake.log[0]):  # noqa: F821
    configure_logging()
    from skyquilt.jobs.arguments import fields
    from skyquilt.jobs.evaluation import run_evaluation

    period = snakemake.params.climatology_period  # noqa: F821
    climate = snakemake.params.climate_period  # noqa: F821
    run_evaluation(
        decoded=list(snakemake.input.decoded),  # noqa: F821
        dataset=snakemake.input.dataset,  # noqa: F821
        outputs=dict(snakemake.output.items()),  # noqa: F821
        fields=fields(snakemake.params.fields, "evaluate.fields"),  # noqa: F821
        climatology_period=tuple(period) if period else None,
        blanket_size=snakemake.params.blanket_size,  # noqa: F821
        overlap=snakemake.params.overlap,  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
        climate_period_config=tuple(climate) if climate else None,
    )

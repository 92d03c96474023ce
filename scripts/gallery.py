"""Gallery job: truth and members of one start date at chosen lead hours (rule `gallery`)."""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0]):  # noqa: F821
    from skyquilt.jobs.render import render_gallery

    render_gallery(
        decoded=list(snakemake.input.decoded),  # noqa: F821
        dataset=snakemake.input.dataset,  # noqa: F821
        path=snakemake.output[0],  # noqa: F821
        variable=snakemake.params.field["variable"],  # noqa: F821
        level=snakemake.params.field["level"],  # noqa: F821
        lead_hours=list(snakemake.params.lead_hours),  # noqa: F821
        quantile=snakemake.params.quantile,  # noqa: F821
    )

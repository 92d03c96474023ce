"""Frames job: one chunk of an animation's frames, sample beside truth (rule `frames`)."""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0]):  # noqa: F821
    from skyquilt.jobs.render import render_frames

    render_frames(
        decoded=snakemake.input.decoded,  # noqa: F821
        dataset=snakemake.input.dataset,  # noqa: F821
        directory=snakemake.output[0],  # noqa: F821
        variable=snakemake.params.field["variable"],  # noqa: F821
        level=snakemake.params.field["level"],  # noqa: F821
        indices=list(snakemake.params.indices),  # noqa: F821
        quantile=snakemake.params.quantile,  # noqa: F821
    )

"""Gallery job: truth and members of one start date at chosen lead hours (rule `gallery`)."""

import contextlib

from skyquilt.jobs.render import render_gallery

with open(snakemake.log[0], "w") as log, contextlib.redirect_stderr(log):  # noqa: F821
    render_gallery(
        decoded=list(snakemake.input.decoded),  # noqa: F821
        dataset=snakemake.input.dataset,  # noqa: F821
        path=snakemake.output[0],  # noqa: F821
        variable=snakemake.params.field["variable"],  # noqa: F821
        level=snakemake.params.field["level"],  # noqa: F821
        lead_hours=list(snakemake.params.lead_hours),  # noqa: F821
        quantile=snakemake.params.quantile,  # noqa: F821
    )

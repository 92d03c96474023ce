"""Frames job: one chunk of an animation's frames, sample beside truth (rule `frames`)."""

import contextlib

from skyquilt.jobs import configure_logging
from skyquilt.product_jobs import render_frames
from skyquilt.products import Field

with open(snakemake.log[0], "w") as log, contextlib.redirect_stderr(log):  # noqa: F821
    configure_logging()
    render_frames(
        decoded=snakemake.input.decoded,  # noqa: F821
        dataset=snakemake.input.dataset,  # noqa: F821
        directory=snakemake.output[0],  # noqa: F821
        field=Field(**snakemake.params.field),  # noqa: F821
        indices=list(snakemake.params.indices),  # noqa: F821
        quantile=snakemake.params.quantile,  # noqa: F821
    )

"""Frames job: one chunk of an animation's frames, sample beside truth (rule `frames`)."""

import contextlib

from skyquilt.jobs.render import render_frames

with open(snakemake.log[0], "w") as log, contextlib.redirect_stderr(log):  # noqa: F821
    render_frames(
        decoded=snakemake.input.decoded,  # noqa: F821
        dataset=snakemake.input.dataset,  # noqa: F821
        directory=snakemake.output[0],  # noqa: F821
        variable=snakemake.params.field["variable"],  # noqa: F821
        level=snakemake.params.field["level"],  # noqa: F821
        indices=list(snakemake.params.indices),  # noqa: F821
        quantile=snakemake.params.quantile,  # noqa: F821
    )

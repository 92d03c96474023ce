"""Animation job: the frames of one member as a GIF, and an MP4 if ffmpeg is available."""

import contextlib

from skyquilt.render_jobs import render_animation

with open(snakemake.log[0], "w") as log, contextlib.redirect_stderr(log):  # noqa: F821
    render_animation(
        frame_directories=list(snakemake.input),  # noqa: F821
        gif=snakemake.output.gif,  # noqa: F821
        mp4=snakemake.output.get("mp4"),  # noqa: F821
        fps=snakemake.params.fps,  # noqa: F821
    )

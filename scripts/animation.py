"""Animation job: one member beside the truth as a GIF, and an MP4 if ffmpeg is available,
from the frames of several frames jobs or rendered here."""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0]):  # noqa: F821
    from skyquilt.jobs.render import animate_frames, animate_member

    outputs = {
        "gif": snakemake.output.gif,  # noqa: F821
        "mp4": snakemake.output.get("mp4"),  # noqa: F821
        "fps": snakemake.params.fps,  # noqa: F821
    }
    if "frames" in snakemake.input.keys():  # noqa: F821
        animate_frames(list(snakemake.input.frames), **outputs)  # noqa: F821
    else:
        animate_member(
            decoded=snakemake.input.decoded,  # noqa: F821
            dataset=snakemake.input.dataset,  # noqa: F821
            variable=snakemake.params.field["variable"],  # noqa: F821
            level=snakemake.params.field["level"],  # noqa: F821
            quantile=snakemake.params.quantile,  # noqa: F821
            **outputs,
        )

"""Rule demo_export: write the trained demo weights, the dataset's fingerprint and the settings
they were trained with to demo.export (skyquilt.demo.pretrained)."""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0]) as log:  # noqa: F821
    from pathlib import Path

    from skyquilt.jobs.demo import run_demo_export

    run_demo_export(
        dataset=snakemake.input.dataset,  # noqa: F821
        fingerprint_file=snakemake.output.fingerprint,  # noqa: F821
        directories={
            "autoencoder": Path(snakemake.input.autoencoder).parent,  # noqa: F821
            "denoiser": Path(snakemake.input.denoiser).parent,  # noqa: F821
            "coarse": Path(snakemake.input.coarse).parent,  # noqa: F821
        },
        training=snakemake.params.training,  # noqa: F821
        log=log,
    )

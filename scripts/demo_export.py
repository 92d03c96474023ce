"""Rule demo_export: write the trained demo weights, the dataset's fingerprint and the settings
they were trained with to demo.export (skyquilt.demo.pretrained)."""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0]) as log:  # noqa: F821
    from pathlib import Path

    from skyquilt.demo.pretrained import dataset_fingerprint, export

    fingerprint = dataset_fingerprint(snakemake.input.dataset)  # noqa: F821
    destination = Path(snakemake.output.fingerprint).parent  # noqa: F821
    directories = {
        "autoencoder": Path(snakemake.input.autoencoder).parent,  # noqa: F821
        "denoiser": Path(snakemake.input.denoiser).parent,  # noqa: F821
        "coarse": Path(snakemake.input.coarse).parent,  # noqa: F821
    }
    export(directories, fingerprint, snakemake.params.training, destination)  # noqa: F821
    print(f"exported the demo weights to {destination} (dataset {fingerprint})", file=log)

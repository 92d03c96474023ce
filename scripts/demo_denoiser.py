"""Rule demo_denoiser: install the shipped denoiser when it was trained on this dataset, with
these settings and on the shipped autoencoder's latents (skyquilt.demo.pretrained), else train
it; write its model directory.

Progress (tqdm) goes to the console, a summary to the log, and so does the traceback if the job
fails.
"""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0], capture_stderr=False) as log:  # noqa: F821
    import json
    from pathlib import Path

    import torch

    from skyquilt.demo.pretrained import (
        dataset_fingerprint,
        install,
        same_autoencoder,
        unusable_reason,
    )
    from skyquilt.demo.train_denoiser import make_denoiser
    from skyquilt.planning.demo_settings import DenoiserSettings

    torch.set_num_threads(snakemake.threads)  # noqa: F821
    model_path = Path(snakemake.output.config).parent  # noqa: F821
    shipped = snakemake.params.pretrained  # noqa: F821
    reason = unusable_reason(
        shipped,
        "denoiser",
        dataset_fingerprint(snakemake.input.dataset),  # noqa: F821
        snakemake.params.training,  # noqa: F821
    )
    if reason is None and not same_autoencoder(shipped, snakemake.input.ae_weights):  # noqa: F821
        reason = "the autoencoder in use is not the shipped one"
    if reason is None:
        install(shipped, "denoiser", model_path)
        print(f"installed the shipped denoiser of {shipped}: same dataset, same settings", file=log)
    else:
        print(f"training the denoiser: {reason}", file=log)
        summary = make_denoiser(
            latent_dir=Path(snakemake.input.stats).parent,  # noqa: F821
            model_path=model_path,
            settings=DenoiserSettings(**snakemake.params.settings),  # noqa: F821
            held_out=tuple(snakemake.params.held_out),  # noqa: F821
            progress=True,
        )
        print(json.dumps({"training": summary}, indent=2), file=log)

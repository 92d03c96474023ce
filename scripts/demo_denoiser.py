"""Rules demo_denoiser and demo_coarse: install the shipped denoiser (or its coarse model) when
it was trained on this dataset, with these settings and on the shipped autoencoder's latents
(skyquilt.demo.pretrained), else train it; write its model directory.

Progress (tqdm) goes to the console, a summary to the log, and so does the traceback if the job
fails.
"""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0], capture_stderr=False) as log:  # noqa: F821
    import json
    from pathlib import Path

    import torch

    from skyquilt.demo.pretrained import install_if_usable
    from skyquilt.demo.train_denoiser import declare_coarse, make_denoiser
    from skyquilt.planning.demo_settings import CoarseSettings, DenoiserSettings

    torch.set_num_threads(snakemake.threads)  # noqa: F821
    model_path = Path(snakemake.output.config).parent  # noqa: F821
    part = snakemake.params.part  # noqa: F821
    coarse = CoarseSettings(**snakemake.params.coarse)  # noqa: F821
    # The denoiser's config.yaml declares the coarse model; the coarse model's declares none.
    if part == "coarse":
        settings, declared = coarse, None
    else:
        settings, declared = DenoiserSettings(**snakemake.params.settings), coarse  # noqa: F821
    installed = install_if_usable(
        snakemake.params.pretrained,  # noqa: F821
        part,
        snakemake.input.dataset,  # noqa: F821
        snakemake.params.training,  # noqa: F821
        model_path,
        log,
        autoencoder_weights=snakemake.input.ae_weights,  # noqa: F821
    )
    if not installed:
        summary = make_denoiser(
            latent_dir=Path(snakemake.input.stats).parent,  # noqa: F821
            model_path=model_path,
            settings=settings,
            held_out=tuple(snakemake.params.held_out),  # noqa: F821
            progress=True,
            coarse=declared,
        )
        print(json.dumps({"training": summary}, indent=2), file=log)
    if part == "denoiser":
        declare_coarse(model_path, declared)

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

    from skyquilt.demo.pretrained import install_if_usable
    from skyquilt.demo.train_denoiser import make_denoiser
    from skyquilt.planning.demo_settings import DenoiserSettings

    torch.set_num_threads(snakemake.threads)  # noqa: F821
    model_path = Path(snakemake.output.config).parent  # noqa: F821
    installed = install_if_usable(
        snakemake.params.pretrained,  # noqa: F821
        "denoiser",
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
            settings=DenoiserSettings(**snakemake.params.settings),  # noqa: F821
            held_out=tuple(snakemake.params.held_out),  # noqa: F821
            progress=True,
        )
        print(json.dumps({"training": summary}, indent=2), file=log)

"""Rules demo_denoiser and demo_coarse: install the shipped denoiser (or its coarse model) when
it was trained on this dataset, with these settings and on the shipped autoencoder's latents
(skyquilt.demo.pretrained), else train it; write its model directory.

Progress (tqdm) goes to the console, a summary to the log, and so does the traceback if the job
fails.
"""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0], capture_stderr=False) as log:  # noqa: F821
    from skyquilt.jobs.demo import run_demo_denoiser

    run_demo_denoiser(
        dataset=snakemake.input.dataset,  # noqa: F821
        config_file=snakemake.output.config,  # noqa: F821
        stats=snakemake.input.stats,  # noqa: F821
        autoencoder_weights=snakemake.input.ae_weights,  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
        log=log,
        # part, coarse, held_out, pretrained, training and (the denoiser's) settings
        **dict(snakemake.params.items()),  # noqa: F821
    )

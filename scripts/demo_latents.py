"""Rule demo_latents: encode the whole dataset into latent_dir with the latent statistics.

Progress (tqdm) goes to the console, a summary to the rule's log, and so does the traceback
if the job fails.
"""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0], capture_stderr=False) as log:  # noqa: F821
    from pathlib import Path

    import torch

    from skyquilt.demo.latents import dump_latents

    torch.set_num_threads(snakemake.threads)  # noqa: F821
    mean, std = dump_latents(
        dataset_path=snakemake.input.dataset,  # noqa: F821
        autoencoder_dir=Path(snakemake.input.config).parent,  # noqa: F821
        latent_dir=Path(snakemake.output.stats).parent,  # noqa: F821
        held_out=tuple(snakemake.params.held_out),  # noqa: F821
        progress=True,
    )
    print(f"latent shape {tuple(mean.shape)}", file=log)
    print(
        f"latent mean: mean {mean.mean():.4f}, std: min {std.min():.4f} max {std.max():.4f}",
        file=log,
    )

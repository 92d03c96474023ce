"""Rule demo_autoencoder: train the demo autoencoder and write its directory + metrics.

Progress (tqdm) goes to the console, the metrics to the rule's log, and so does the
traceback if the job fails.
"""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0], capture_stderr=False) as log:  # noqa: F821
    import json
    from pathlib import Path

    import torch

    from skyquilt.demo.train_autoencoder import make_autoencoder
    from skyquilt.planning.demo_settings import AutoencoderSettings

    torch.set_num_threads(snakemake.threads)  # noqa: F821
    metrics = make_autoencoder(
        dataset_path=snakemake.input.dataset,  # noqa: F821
        directory=Path(snakemake.output.config).parent,  # noqa: F821
        settings=AutoencoderSettings(**snakemake.params.settings),  # noqa: F821
        held_out=tuple(snakemake.params.held_out),  # noqa: F821
        progress=True,
    )
    print(json.dumps(metrics, indent=2), file=log)

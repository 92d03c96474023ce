"""Rule demo_autoencoder: install the shipped autoencoder when it was trained on this dataset
with these settings (skyquilt.demo.pretrained), else train it; write its directory + metrics.

Progress (tqdm) goes to the console, the metrics to the rule's log, and so does the
traceback if the job fails.
"""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0], capture_stderr=False) as log:  # noqa: F821
    import json
    from pathlib import Path

    import torch

    from skyquilt.demo.pretrained import install_if_usable
    from skyquilt.demo.train_autoencoder import METRICS_FILE, make_autoencoder
    from skyquilt.planning.demo_settings import AutoencoderSettings

    torch.set_num_threads(snakemake.threads)  # noqa: F821
    directory = Path(snakemake.output.config).parent  # noqa: F821
    installed = install_if_usable(
        snakemake.params.pretrained,  # noqa: F821
        "autoencoder",
        snakemake.input.dataset,  # noqa: F821
        snakemake.params.training,  # noqa: F821
        directory,
        log,
    )
    if installed:
        metrics = json.loads((directory / METRICS_FILE).read_text())
    else:
        metrics = make_autoencoder(
            dataset_path=snakemake.input.dataset,  # noqa: F821
            directory=directory,
            settings=AutoencoderSettings(**snakemake.params.settings),  # noqa: F821
            held_out=tuple(snakemake.params.held_out),  # noqa: F821
            progress=True,
        )
    print(json.dumps(metrics, indent=2), file=log)

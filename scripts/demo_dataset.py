"""Rule demo_dataset: simulate the demo dataset, write it and its normalisation statistics.

Progress (tqdm) goes to the console, a summary to the rule's log, and so does the traceback
if the job fails.
"""

from skyquilt.jobs.logs import job_log

with job_log(snakemake.log[0], capture_stderr=False) as log:  # noqa: F821
    import time

    import torch

    from skyquilt.demo.dataset import simulate_dataset, write_dataset
    from skyquilt.planning.demo_settings import DatasetSettings

    settings = DatasetSettings.from_config(snakemake.params.settings)  # noqa: F821
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    start = time.monotonic()
    print(f"settings: {settings}", file=log)
    dataset = simulate_dataset(settings, progress=True)
    write_dataset(dataset, snakemake.output.dataset, settings.held_out)  # noqa: F821
    print(f"states: {dataset.sizes['time']}, wall time: {time.monotonic() - start:.1f} s", file=log)

"""Decode job: one member's latents to physical fields (rule `decode`)."""

from skyquilt.jobs.logs import configure_logging, job_log

with job_log(snakemake.log[0]):  # noqa: F821
    configure_logging()
    import torch

    from skyquilt.jobs.decode import decode_member

    torch.set_num_threads(snakemake.threads)  # noqa: F821
    decode_member(
        shard_path=snakemake.input.shard,  # noqa: F821
        model_path=snakemake.params.model_path,  # noqa: F821
        dataset_path=snakemake.input.dataset,  # noqa: F821
        output_path=snakemake.output[0],  # noqa: F821
        states_per_chunk=snakemake.params.states_per_chunk,  # noqa: F821
        device="cuda" if torch.cuda.is_available() else "cpu",
    )

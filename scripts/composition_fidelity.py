"""Composition-fidelity job: single blankets vs composed trajectories of one size (rule
`composition_fidelity`)."""

from skyquilt.jobs.logs import configure_logging, job_log

with job_log(snakemake.log[0]):  # noqa: F821
    configure_logging()
    import torch

    from skyquilt.jobs.arguments import run_settings
    from skyquilt.jobs.composition_fidelity import run_fidelity

    torch.set_num_threads(snakemake.threads)  # noqa: F821
    period = snakemake.params.climate_period  # noqa: F821
    run_fidelity(
        climate_csv=snakemake.input.climate,  # noqa: F821
        dataset=snakemake.input.dataset,  # noqa: F821
        settings=run_settings(snakemake.params.settings),  # noqa: F821
        size=int(snakemake.wildcards.size),  # noqa: F821
        labels=list(snakemake.params.date_labels),  # noqa: F821
        members=list(snakemake.params.members),  # noqa: F821
        configured_period=tuple(period) if period else None,
        outputs=dict(snakemake.output.items()),  # noqa: F821
        device=torch.device("cuda" if torch.cuda.is_available() else "cpu"),
    )

rule aggregate:
    """All members of one trajectory size, merged one shard at a time.

    update(): Snakemake must not delete the previous aggregate before the job runs; the job
    replaces it atomically, so a killed or failed job leaves it intact and readable.
    """
    input:
        get_shards,
    output:
        update(directory(PLAN.trajectories_path("{size}"))),
    log:
        PLAN.log_path("aggregate/{size}h"),
    conda:
        "../envs/skyquilt.yaml"
    threads: get_threads("aggregate")
    resources:
        **get_resources("aggregate"),
    params:
        settings=PLAN.settings.to_json(),
        latent_shape=list(PLAN.model.latent_shape),
        start_dates=PLAN.date_labels,
        members=PLAN.members,
    script:
        "../scripts/aggregate.py"

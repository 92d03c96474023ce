rule aggregate:
    """All members of one trajectory size, merged one shard at a time.

    update(): Snakemake must not delete the previous aggregate before the job runs; the job
    replaces it atomically, so a killed or failed job leaves it intact and readable.
    """
    input:
        get_shards,
    output:
        update(directory(PLAN.trajectories("{size}"))),
    log:
        f"{PLAN.output_dir}/logs/{PLAN.run}/aggregate/{{size}}h.log",
    conda:
        "../envs/skyquilt.yaml"
    threads: get_threads("aggregate")
    resources:
        **get_resources("aggregate"),
    params:
        expected=lambda wildcards: json.dumps(PLAN.expected_shards(int(wildcards.size))),
        start_dates=PLAN.date_labels,
        members=PLAN.members,
    script:
        "../scripts/aggregate.py"

rule aggregate:
    """All members of one trajectory size, merged one shard at a time."""
    input:
        get_shards,
    output:
        directory(PLAN.trajectories("{size}")),
    log:
        f"{PLAN.output_dir}/logs/{PLAN.run}/aggregate/{{size}}h.log",
    conda:
        "../envs/skyquilt.yaml"
    threads: get_threads("aggregate")
    resources:
        **get_resources("aggregate"),
    params:
        expected=lambda wildcards: json.dumps(PLAN.run_provenance(int(wildcards.size))),
        start_dates=PLAN.date_labels,
        members=PLAN.members,
    script:
        "../scripts/aggregate.py"

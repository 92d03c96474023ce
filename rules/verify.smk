rule verify:
    """Re-check every finished shard and aggregate (checksums, shapes, attributes), and every
    output against the content of the inputs it records (fingerprints), and move the damaged
    and stale ones to <output_dir>/damaged/<run>/, so that the next run regenerates exactly
    those and what was made from them. Fails, naming them, when it found any (docs/outputs-and-evaluation.md,
    verify).
    """
    log:
        PLAN.log_path("verify"),
    conda:
        "../envs/skyquilt.yaml"
    threads: get_threads("verify")
    resources:
        **get_resources("verify"),
    params:
        settings=PLAN.settings.to_json(),
        sizes=PLAN.sizes,
        start_dates=PLAN.date_labels,
        members=PLAN.members,
        latent_shape=list(PLAN.model.latent_shape),
        # Functions: the lists of every shard are built only when verify is asked for.
        shards=lambda wildcards: get_all_shards(),
        trajectories=lambda wildcards: get_trajectories(),
        recorded=lambda wildcards: get_recorded_products(),
        prior_dir=PLAN.prior_dir,
        damaged_dir=f"{PLAN.output_dir}/damaged/{PLAN.run}",
    script:
        "../scripts/verify.py"

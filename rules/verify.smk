rule verify:
    """Re-check every finished shard and aggregate (checksums, shapes, attributes) and move
    the damaged ones to <output_dir>/damaged/<run>/, so that the next run regenerates exactly
    those and their aggregates. Fails, naming them, when it found damage (docs/outputs-and-evaluation.md, verify).
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
        prior_dir=PLAN.prior_dir,
        damaged_dir=f"{PLAN.output_dir}/damaged/{PLAN.run}",
    script:
        "../scripts/verify.py"

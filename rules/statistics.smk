rule ensemble_statistics:
    """Ensemble mean, standard deviation, minimum, maximum and quantiles of the decoded
    members of one trajectory size and start date (WeatherBench2 layout, one group each).
    """
    input:
        unpack(get_statistics_inputs),
    output:
        directory(PRODUCTS.statistics_path("{size}", "{date}")),
    log:
        PLAN.log_path("statistics/{size}h/{date}"),
    conda:
        "../envs/skyquilt.yaml"
    threads: get_threads("ensemble_statistics")
    resources:
        **get_resources("ensemble_statistics"),
    params:
        quantiles=list(PRODUCTS.quantiles),
        block_mb=PRODUCTS.statistics_block_mb,
    script:
        "../scripts/ensemble_statistics.py"


rule latent_ensemble_statistics:
    """Latent mean, std and member checksums of one trajectory size, read from the aggregate
    one member at a time, without decoding."""
    input:
        trajectories=PLAN.trajectories_path("{size}"),
    output:
        directory(PRODUCTS.latent_statistics_path("{size}")),
    log:
        PLAN.log_path("latent_statistics/{size}h"),
    conda:
        "../envs/skyquilt.yaml"
    threads: get_threads("latent_ensemble_statistics")
    resources:
        **get_resources("latent_ensemble_statistics"),
    script:
        "../scripts/latent_ensemble_statistics.py"

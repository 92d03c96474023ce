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
    threads: get_threads("statistics")
    resources:
        **get_resources("statistics"),
    params:
        quantiles=list(PRODUCTS.quantiles),
        block_mb=PRODUCTS.statistics_block_mb,
    script:
        "../scripts/statistics.py"

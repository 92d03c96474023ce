rule evaluation:
    """Scores of the ensemble of one trajectory size against the truth, persistence,
    climatology and a climatology ensemble; rank histograms; zonal spectra; blanket-seam
    continuity; climate diagnostics (std, hourly-change, seam and spectrum ratios)."""
    input:
        unpack(get_evaluation_inputs),
    output:
        metrics_csv=evaluation_report("metrics.csv", "metrics", "metrics table"),
        metrics_zarr=directory(PRODUCTS.evaluation_path("{size}", "metrics.zarr")),
        spectra_csv=PRODUCTS.evaluation_path("{size}", "spectra.csv"),
        steps_csv=PRODUCTS.evaluation_path("{size}", "steps.csv"),
        climate_csv=evaluation_report(
            "climate.csv", "climate_table", "climate diagnostics table"
        ),
        scores_png=evaluation_report("scores.png", "scores", "scores vs lead time"),
        spectra_png=evaluation_report("spectra.png", "spectra", "zonal power spectra"),
        seams_png=evaluation_report("seams.png", "seams", "blanket-seam continuity"),
        rank_histogram_png=evaluation_report(
            "rank_histogram.png", "rank_histogram", "rank histograms"
        ),
        climate_png=evaluation_report("climate.png", "climate", "climate diagnostics"),
    log:
        PLAN.log_path("evaluate/{size}h"),
    conda:
        "../envs/skyquilt.yaml"
    threads: get_threads("evaluation")
    resources:
        **get_resources("evaluation"),
    params:
        fields=config["evaluate"]["fields"],
        climatology_period=PRODUCTS.climatology_period,
        climate_period=PRODUCTS.climate_period,
        blanket_size=PLAN.model.blanket_size,
        overlap=PLAN.settings.overlap,
        seed=PLAN.settings.seed,
        truth=get_truth_fingerprint(PRODUCTS.evaluate_fields),
    script:
        "../scripts/evaluation.py"


rule composition_fidelity:
    """The model sampled as single blankets at the start times of the composed members'
    blankets (same sampler, steps, precision; seeds derived from the run's), decoded and
    compared with the composed members against the same truth: composed / single of the
    std and hourly-change ratios."""
    input:
        unpack(get_fidelity_inputs),
    output:
        fidelity_csv=evaluation_report(
            "fidelity.csv", "fidelity_table", "composition fidelity table"
        ),
        fidelity_png=evaluation_report(
            "fidelity.png", "fidelity", "composition fidelity"
        ),
    log:
        PLAN.log_path("fidelity/{size}h"),
    conda:
        "../envs/skyquilt.yaml"
    threads: get_threads("composition_fidelity")
    resources:
        **get_resources("composition_fidelity"),
    params:
        settings=PLAN.settings.to_json(),
        date_labels=PLAN.date_labels,
        members=PLAN.members,
        climate_period=PRODUCTS.climate_period,
        fingerprints=get_decode_fingerprints,
        truth=get_truth_fingerprint(None),
    script:
        "../scripts/composition_fidelity.py"

rule evaluation:
    """Scores of the ensemble of one trajectory size against the truth, persistence,
    climatology and a climatology ensemble; rank histograms; zonal spectra; blanket-seam
    continuity; climate diagnostics (std, hourly-change, seam and spectrum ratios)."""
    input:
        unpack(get_evaluation_inputs),
    output:
        metrics_csv=report(
            PRODUCTS.evaluation_path("{size}", "metrics.csv"),
            caption="../report/metrics.rst",
            category="Evaluation",
            subcategory="{size}h trajectories",
            labels={"figure": "metrics table"},
        ),
        metrics_zarr=directory(PRODUCTS.evaluation_path("{size}", "metrics.zarr")),
        spectra_csv=PRODUCTS.evaluation_path("{size}", "spectra.csv"),
        steps_csv=PRODUCTS.evaluation_path("{size}", "steps.csv"),
        climate_csv=report(
            PRODUCTS.evaluation_path("{size}", "climate.csv"),
            caption="../report/climate_table.rst",
            category="Evaluation",
            subcategory="{size}h trajectories",
            labels={"figure": "climate diagnostics table"},
        ),
        scores_png=report(
            PRODUCTS.evaluation_path("{size}", "scores.png"),
            caption="../report/scores.rst",
            category="Evaluation",
            subcategory="{size}h trajectories",
            labels={"figure": "scores vs lead time"},
        ),
        spectra_png=report(
            PRODUCTS.evaluation_path("{size}", "spectra.png"),
            caption="../report/spectra.rst",
            category="Evaluation",
            subcategory="{size}h trajectories",
            labels={"figure": "zonal power spectra"},
        ),
        seams_png=report(
            PRODUCTS.evaluation_path("{size}", "seams.png"),
            caption="../report/seams.rst",
            category="Evaluation",
            subcategory="{size}h trajectories",
            labels={"figure": "blanket-seam continuity"},
        ),
        rank_histogram_png=report(
            PRODUCTS.evaluation_path("{size}", "rank_histogram.png"),
            caption="../report/rank_histogram.rst",
            category="Evaluation",
            subcategory="{size}h trajectories",
            labels={"figure": "rank histograms"},
        ),
        climate_png=report(
            PRODUCTS.evaluation_path("{size}", "climate.png"),
            caption="../report/climate.rst",
            category="Evaluation",
            subcategory="{size}h trajectories",
            labels={"figure": "climate diagnostics"},
        ),
    log:
        PLAN.log_path("evaluate/{size}h"),
    conda:
        "../envs/skyquilt.yaml"
    threads: get_threads("evaluate")
    resources:
        **get_resources("evaluate"),
    params:
        fields=config["evaluate"]["fields"],
        climatology_period=PRODUCTS.climatology_period,
        climate_period=PRODUCTS.climate_period,
        blanket_size=PLAN.model.blanket_size,
        overlap=PLAN.settings.overlap,
        seed=PLAN.settings.seed,
        truth=get_truth_fingerprint(PRODUCTS.evaluate_fields),
    script:
        "../scripts/evaluate.py"


rule composition_fidelity:
    """The model sampled as single blankets at the start times of the composed members'
    blankets (same sampler, steps, precision; seeds derived from the run's), decoded and
    compared with the composed members against the same truth: composed / single of the
    std and hourly-change ratios."""
    input:
        unpack(get_fidelity_inputs),
    output:
        fidelity_csv=report(
            PRODUCTS.evaluation_path("{size}", "fidelity.csv"),
            caption="../report/fidelity_table.rst",
            category="Evaluation",
            subcategory="{size}h trajectories",
            labels={"figure": "composition fidelity table"},
        ),
        fidelity_png=report(
            PRODUCTS.evaluation_path("{size}", "fidelity.png"),
            caption="../report/fidelity.rst",
            category="Evaluation",
            subcategory="{size}h trajectories",
            labels={"figure": "composition fidelity"},
        ),
    log:
        PLAN.log_path("fidelity/{size}h"),
    conda:
        "../envs/skyquilt.yaml"
    threads: get_threads("generate")
    resources:
        **get_resources("generate"),
    params:
        settings=PLAN.settings.to_json(),
        date_labels=PLAN.date_labels,
        members=PLAN.members,
        climate_period=PRODUCTS.climate_period,
        fingerprints=get_decode_fingerprints,
        truth=get_truth_fingerprint(None),
    script:
        "../scripts/fidelity.py"

rule evaluation:
    """Scores of the ensemble of one trajectory size against the truth, persistence,
    climatology and a climatology ensemble; rank histograms; zonal spectra; blanket-seam
    continuity."""
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
        blanket_size=PLAN.model.blanket_size,
        overlap=PLAN.settings.overlap,
        seed=PLAN.settings.seed,
    script:
        "../scripts/evaluate.py"

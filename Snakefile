from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/slurm.smk"
include: "rules/inputs.smk"
include: "rules/demo.smk"
include: "rules/generate.smk"
include: "rules/aggregate.smk"
include: "rules/decode.smk"
include: "rules/render.smk"
include: "rules/evaluate.smk"
include: "rules/statistics.smk"
include: "rules/verify.smk"


rule all:
    default_target: True
    input:
        get_trajectories(),
        get_all_shards(),
        get_existing_products(),
        get_demo_checks(),


rule render:
    """Galleries and animations of the decoded samples (on request)."""
    input:
        get_render_targets,
        get_demo_checks(),


rule evaluate:
    """Scores, spectra, seam continuity and climate diagnostics of every trajectory size
    (on request)."""
    input:
        get_evaluate_targets,
        get_demo_checks(),


rule fidelity:
    """Composition fidelity of every trajectory size: composed trajectories vs single
    blankets of the same model (on request)."""
    input:
        get_fidelity_targets,
        get_demo_checks(),


rule statistics:
    """Ensemble mean, std, min, max and quantiles of every size and start date (on request)."""
    input:
        get_statistics_targets,
        get_demo_checks(),


rule latent_statistics:
    """Latent mean, std and member checksums of every trajectory size (on request, no
    decoding)."""
    input:
        [PRODUCTS.latent_statistics_path(size) for size in PLAN.sizes],
        get_demo_checks(),

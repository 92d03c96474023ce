"""Input functions: what each rule's jobs read and what each target asks for, from the plan.

The members of a trajectory size (or of one of its start dates) come from one place,
PLAN.members_of; the on-request rules check their request once, when the DAG first needs it
(check_product). Included after rules/slurm.smk.
"""

from pathlib import Path

from skyquilt.models.config import ModelDirectory
from skyquilt.planning.dataset_checks import check_request


def get_trajectories():
    """The aggregate of every trajectory size."""
    return [PLAN.trajectories_path(size) for size in PLAN.sizes]


def get_all_shards():
    """Every member shard of the run: listing them in `all` makes a deleted or failed
    member rerun (with its aggregate) even though the aggregate already exists."""
    return [
        PLAN.shard_path(*key) for size in PLAN.sizes for key in PLAN.members_of(size)
    ]


def get_shards(wildcards):
    """Every member shard of one trajectory size."""
    check_where_jobs_run()
    return [PLAN.shard_path(*key) for key in PLAN.members_of(wildcards.size)]


def get_model_files():
    """The denoiser files a generation job reads, with those of its coarse model when the
    run composes two_scale (built by the demo rules if missing)."""
    settings = PLAN.settings
    directory = ModelDirectory(Path(settings.model_path))
    files = directory.denoiser_files(
        settings.model_target, settings.composition, PLAN.model
    )
    names = ("config", "weights", "coarse_config", "coarse_weights")
    return {name: str(path) for name, path in zip(names, files)}


def get_decoder_files():
    """The files decoding reads besides the latents: the decoder and the latent statistics."""
    files = ModelDirectory(Path(PLAN.settings.model_path)).decoder_files()
    return {
        "decoder_config": str(files["decoder config"]),
        "decoder_weights": str(files["decoder weights"]),
        "latent_stats": str(files["latent statistics"]),
    }


@functools.cache
def check_product(product):
    """Fail with one line unless `product` ('decoded', 'render', 'evaluation' or 'statistics')
    can be made.

    The input functions of the on-request rules call it, so a request is checked only when
    the DAG needs it (Snakemake knows the targets only after parsing), once, before any job.
    """
    check_where_jobs_run()
    checked(check_request, PRODUCTS, {product}, PARSED.built_by_workflow)


def get_render_targets(wildcards):
    """Every gallery and animation of the run."""
    check_product("render")
    return PRODUCTS.render_targets()


def get_evaluate_targets(wildcards):
    """The metrics, tables and plots of every trajectory size."""
    check_product("evaluation")
    return PRODUCTS.evaluate_targets()


def get_fidelity_targets(wildcards):
    """The composition-fidelity table and plot of every trajectory size."""
    check_product("evaluation")
    return PRODUCTS.fidelity_targets()


def get_statistics_targets(wildcards):
    """The ensemble statistics of every trajectory size and start date."""
    check_product("statistics")
    return PRODUCTS.statistics_targets()


def get_decode_fingerprints(wildcards):
    """The fingerprints of what decoding reads: the decoder and the dataset's grid."""
    return checked(lambda: INPUTS.decoding)


def get_truth_fingerprint(fields):
    """A function of the wildcards: the fingerprint of the truth of `fields` (of every
    decoded variable when None), for the params of the rules that read the truth."""
    return lambda wildcards: checked(INPUTS.truth, fields)


def get_recorded_products():
    """Every decoded member, evaluation and statistics store the run may have made: the
    outputs besides shards and aggregates that record their inputs (for `verify`)."""
    decoded = [
        PRODUCTS.decoded_path(*key)
        for size in PLAN.sizes
        for key in PLAN.members_of(size)
    ]
    evaluations = [
        PRODUCTS.evaluation_path(size, "metrics.zarr") for size in PLAN.sizes
    ]
    return decoded + evaluations + PRODUCTS.statistics_targets()


def get_existing_products():
    """Renders, evaluations and statistics made earlier on request: `all` keeps them up to
    date, and `snakemake --report` finds them."""
    products = PRODUCTS.render_targets() + PRODUCTS.evaluate_targets()
    products += PRODUCTS.fidelity_targets()
    products += PRODUCTS.statistics_targets()
    return [path for path in products if os.path.exists(path)]


def get_decode_inputs(wildcards):
    """What decoding one member reads: its shard, the decoder, latent statistics, dataset."""
    check_product("decoded")
    return {
        "shard": PLAN.shard_path(wildcards.size, wildcards.date, wildcards.member),
        **get_decoder_files(),
        "dataset": PRODUCTS.dataset,
    }


def get_field(wildcards):
    """The render field named by the {field} wildcard: {variable, level}."""
    for field in PRODUCTS.render_fields or []:
        if field.label == wildcards.field:
            return {"variable": field.variable, "level": field.level}
    raise ValueError(f"{wildcards.field} is not one of render.fields")


def get_gallery_inputs(wildcards):
    """The decoded members shown in the gallery of one (size, start date), and the truth."""
    check_product("render")
    decoded = [
        PRODUCTS.decoded_path(wildcards.size, wildcards.date, member)
        for member in PRODUCTS.gallery_member_list()
    ]
    return {"decoded": decoded, "dataset": PRODUCTS.dataset}


def get_frames_inputs(wildcards):
    """The decoded member of an animation, and the truth."""
    check_product("render")
    decoded = PRODUCTS.decoded_path(wildcards.size, wildcards.date, wildcards.member)
    return {"decoded": decoded, "dataset": PRODUCTS.dataset}


def get_animation_inputs(wildcards):
    """The frames of one animation, one directory per frames job, in order, when its frames
    are split over jobs (render.animation.frames_per_job); else the decoded member itself,
    rendered by the animation job."""
    if not PRODUCTS.frames_per_job:
        return get_frames_inputs(wildcards)
    frames = [
        PRODUCTS.frames_dir(
            wildcards.size, wildcards.date, wildcards.member, wildcards.field, chunk
        )
        for chunk in range(len(PRODUCTS.frame_chunks(wildcards.size)))
    ]
    return {"frames": frames}


def get_frame_indices(wildcards):
    """State indices rendered by one frames job."""
    return PRODUCTS.frame_chunks(wildcards.size)[int(wildcards.chunk)]


def get_animation_outputs():
    """GIF always, MP4 when asked for and ffmpeg is available."""
    return {
        suffix: PRODUCTS.animation_path(
            "{size}", "{date}", "{member}", "{field}", suffix
        )
        for suffix in PRODUCTS.animation_suffixes
    }


def get_evaluation_inputs(wildcards):
    """Every decoded member of one trajectory size, and the truth."""
    check_product("evaluation")
    decoded = [PRODUCTS.decoded_path(*key) for key in PLAN.members_of(wildcards.size)]
    return {"decoded": decoded, "dataset": PRODUCTS.dataset}


def get_fidelity_inputs(wildcards):
    """What the composition-fidelity check of one trajectory size reads: the evaluation's
    climate diagnostics of the composed members, the denoiser, the decoder, the dataset.
    """
    check_product("evaluation")
    return {
        "climate": PRODUCTS.evaluation_path(wildcards.size, "climate.csv"),
        **get_model_files(),
        **get_decoder_files(),
        "dataset": PRODUCTS.dataset,
    }


def get_statistics_inputs(wildcards):
    """Every decoded member of one (trajectory size, start date)."""
    check_product("statistics")
    decoded = [
        PRODUCTS.decoded_path(*key)
        for key in PLAN.members_of(wildcards.size, wildcards.date)
    ]
    return {"decoded": decoded}


def get_demo_checks():
    """The demo model's sanity check when the run samples the demo model."""
    demo_model = os.path.normpath(str(DEMO.model_path))
    if os.path.normpath(str(config["model_path"])) == demo_model:
        return [rules.demo_sanity.output.sanity]
    return []

import functools
import os
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate

from skyquilt.models.config import ModelDirectory
from skyquilt.planning.config import checked, check_no_yaml_dates, normalise_integers
from skyquilt.planning.products import FIELD_WILDCARD, check_request, make_products
from skyquilt.planning.plan import WILDCARDS, make_plan
from skyquilt.planning.resources import check_executor, launcher_command
from skyquilt.planning.slurm_paths import check_slurm_paths
from skyquilt.planning.slurm_run import (
    check_cluster,
    constant_resources,
    listen_for_run_id,
    slurm_settings,
    start_queue_summaries,
    status_polling,
)

# The post-deploy script of envs/skyquilt.yaml installs skyquilt from here into rule
# environments (`--use-conda`); Snakemake creates them from this process.
os.environ.update(SKYQUILT_SOURCE=workflow.basedir)
SCHEMAS = os.path.join(workflow.basedir, "config")
# Before the schema: unquoted YAML dates get a line saying how to write them, and floats
# that equal an integer (2.0) become that integer for every job.
checked(check_no_yaml_dates, config)
checked(normalise_integers, config, f"{SCHEMAS}/schema.yaml")
checked(normalise_integers, config, f"{SCHEMAS}/schema.report.yaml")
checked(validate, config, schema=f"{SCHEMAS}/schema.yaml")
PLAN = checked(
    make_plan, config, built_by_workflow=globals().get("WORKFLOW_BUILT_MODELS", {})
)
if workflow.is_main_process:
    for warning in PLAN.warnings:
        logger.warning(f"skyquilt: {warning}")
# The SLURM executor logs the run's id as it starts, before `onstart`: listen from here on.
SLURM_RUN = listen_for_run_id(logger) if workflow.is_main_process else None


@functools.cache
def check_where_jobs_run():
    """Fail with one line when backend local meets an executor that submits jobs (SLURM),
    when a path of a SLURM run would not reach its jobs intact, or when the SLURM cluster
    would make the run hang or fail late (the preflight; both also on `-n` with the SLURM
    profile); then, on a SLURM run, log the run's jobs by state every
    hardware.queue_summary_every seconds.

    The executor is known only once the DAG is built (a dry run stands in for it), so the
    aggregate's and the on-request rules' input functions call this, once, and so does
    `onstart` for runs of other targets (a member alone).
    """
    plugin = workflow.executor_plugin
    if not workflow.is_main_process or plugin is None:
        return
    hardware = config["hardware"]
    checked(check_executor, hardware, plugin.name)
    slurm = slurm_settings(workflow)
    if slurm is None:
        return  # jobs run here: no SLURM command is called
    checked(check_slurm_paths, config, slurm[0].pass_command_as_script)
    if hardware["preflight"]:
        polling, resources = status_polling(*slurm), constant_resources(workflow)
        logger.info(
            f"skyquilt: {checked(check_cluster, polling, hardware, PLAN.resources, resources)}"
        )
    if plugin.name == "slurm":
        start_queue_summaries(logger, SLURM_RUN, hardware["queue_summary_every"])


onstart:
    check_where_jobs_run()


wildcard_constraints:
    size=WILDCARDS["size"],
    date=WILDCARDS["date"],
    member=WILDCARDS["member"],


def get_trajectories():
    """The aggregate of every trajectory size."""
    return [PLAN.trajectories_path(size) for size in PLAN.sizes]


def get_all_shards():
    """Every member shard of the run: listing them in `all` makes a deleted or failed
    member rerun (with its aggregate) even though the aggregate already exists."""
    return [
        PLAN.shard_path(size, label, member)
        for size in PLAN.sizes
        for label in PLAN.date_labels
        for member in PLAN.members
    ]


def get_shards(wildcards):
    """Every member shard of one trajectory size."""
    check_where_jobs_run()
    return [
        PLAN.shard_path(wildcards.size, label, member)
        for label in PLAN.date_labels
        for member in PLAN.members
    ]


def get_model_files():
    """The denoiser files a generation job reads, with those of its coarse model when the
    run composes two_scale (built by the demo rules if missing)."""
    directory = ModelDirectory(Path(PLAN.settings.model_path))
    files = {
        "config": str(directory.config_file),
        "weights": str(directory.weights_file(PLAN.settings.model_target)),
    }
    if PLAN.coarse_model is not None:
        coarse = ModelDirectory(directory.coarse_path(PLAN.model))
        files["coarse_config"] = str(coarse.config_file)
        files["coarse_weights"] = str(coarse.weights_file(PLAN.settings.model_target))
    return files


def get_resources(rule):
    """Snakemake resources of `rule` from config['hardware'] (see README, 'hardware')."""
    return {
        key: value
        for key, value in PLAN.resources.get(rule, {}).items()
        if key not in ("cpus", "gpus_per_node")
    }


def get_threads(rule):
    return PLAN.resources.get(rule, {}).get("cpus", 1)


def get_launcher():
    """python, or torchrun with one process per GPU (or per `generation.processes`),
    never more processes than a trajectory has blankets: a constant when every size
    runs the same number of processes, else a function of the size wildcard."""
    nodes = PLAN.resources["generate"].get("nodes", 1)
    counts = {PLAN.processes_for(size) for size in PLAN.sizes}
    if len(counts) == 1:
        return launcher_command(counts.pop(), nodes)
    return lambda wildcards: launcher_command(
        PLAN.processes_for(int(wildcards.size)), nodes
    )


for size in PLAN.sizes:
    if PLAN.processes_for(size) < PLAN.processes:
        logger.warning(
            f"skyquilt: {PLAN.processes} processes requested, but trajectories of {size} "
            f"states have only {PLAN.processes_for(size)} blankets: their generation jobs "
            f"run {PLAN.processes_for(size)} processes"
        )


# On-request outputs (decode, render, evaluate): settings, checks, inputs.
checked(validate, config, schema=f"{SCHEMAS}/schema.report.yaml")
PRODUCTS = checked(make_products, config, PLAN)


wildcard_constraints:
    field=FIELD_WILDCARD,
    chunk=r"\d+",


@functools.cache
def check_product(product):
    """Fail with one line unless `product` ('decoded', 'render', 'evaluation' or 'statistics')
    can be made.

    The input functions of the on-request rules call it, so a request is checked only when
    the DAG needs it (Snakemake knows the targets only after parsing), once, before any job.
    """
    check_where_jobs_run()
    built = [
        *globals().get("WORKFLOW_BUILT_MODELS", {}),
        *globals().get("WORKFLOW_BUILT_DATASETS", ()),
    ]
    checked(check_request, PRODUCTS, {product}, built)


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
    files = ModelDirectory(Path(PLAN.settings.model_path)).decoder_files()
    return {
        "shard": PLAN.shard_path(wildcards.size, wildcards.date, wildcards.member),
        "decoder_config": str(files["decoder config"]),
        "decoder_weights": str(files["decoder weights"]),
        "latent_stats": str(files["latent statistics"]),
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
    decoded = [
        PRODUCTS.decoded_path(wildcards.size, label, member)
        for label in PLAN.date_labels
        for member in PLAN.members
    ]
    return {"decoded": decoded, "dataset": PRODUCTS.dataset}


def get_fidelity_inputs(wildcards):
    """What the composition-fidelity check of one trajectory size reads: the evaluation's
    climate diagnostics of the composed members, the denoiser, the decoder, the dataset.
    """
    check_product("evaluation")
    files = ModelDirectory(Path(PLAN.settings.model_path)).decoder_files()
    return {
        "climate": PRODUCTS.evaluation_path(wildcards.size, "climate.csv"),
        **get_model_files(),
        "decoder_config": str(files["decoder config"]),
        "decoder_weights": str(files["decoder weights"]),
        "latent_stats": str(files["latent statistics"]),
        "dataset": PRODUCTS.dataset,
    }


def get_statistics_inputs(wildcards):
    """Every decoded member of one (trajectory size, start date)."""
    check_product("statistics")
    decoded = [
        PRODUCTS.decoded_path(wildcards.size, wildcards.date, member)
        for member in PLAN.members
    ]
    return {"decoded": decoded}


def get_demo_checks():
    """The demo model's sanity check when the run samples the demo model."""
    demo_model = os.path.normpath(str(DEMO.model_path))
    if os.path.normpath(str(config["model_path"])) == demo_model:
        return [rules.demo_sanity.output.sanity]
    return []

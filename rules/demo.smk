"""The embedded demo: dataset -> autoencoder -> latent dump -> denoiser, under resources/demo.

Include it after rules/common.smk, whose config checks make its plan (DEMO).
"""

from skyquilt.planning.demo_settings import stats_path


rule demo_dataset:
    """Hourly ERA5-like states from the forced shallow-water model, and their statistics."""
    output:
        dataset=directory(str(DEMO.dataset_path)),
        stats=str(stats_path(DEMO.dataset_path)),
    log:
        f"{DEMO.root}/logs/dataset.log",
    benchmark:
        f"{DEMO.root}/benchmarks/dataset.tsv"
    conda:
        "../envs/skyquilt.yaml"
    threads: DEMO.threads
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        settings=config["demo"]["dataset"],
    script:
        "../scripts/demo_dataset.py"


rule demo_autoencoder:
    """The autoencoder, trained on the training period, scored on the held-out period."""
    input:
        dataset=rules.demo_dataset.output.dataset,
        stats=rules.demo_dataset.output.stats,
    output:
        config=f"{DEMO.autoencoder_dir}/config.yaml",
        weights=f"{DEMO.autoencoder_dir}/weights.safetensors",
        metrics=f"{DEMO.autoencoder_dir}/metrics.json",
    log:
        f"{DEMO.root}/logs/autoencoder.log",
    benchmark:
        f"{DEMO.root}/benchmarks/autoencoder.tsv"
    conda:
        "../envs/skyquilt.yaml"
    threads: DEMO.threads
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        settings=config["demo"]["autoencoder"],
        held_out=list(DEMO.dataset.held_out),
        pretrained=DEMO.pretrained,
        training=DEMO.training_settings(("dataset", "autoencoder")),
    script:
        "../scripts/demo_autoencoder.py"


rule demo_latents:
    """Every state encoded (latent_dir/latents.zarr), the latent statistics, and the
    autoencoder copied into latent_dir/ae."""
    input:
        dataset=rules.demo_dataset.output.dataset,
        config=rules.demo_autoencoder.output.config,
        weights=rules.demo_autoencoder.output.weights,
    output:
        latents=directory(f"{DEMO.latent_dir}/latents.zarr"),
        stats=f"{DEMO.latent_dir}/stats.safetensors",
        ae_config=f"{DEMO.latent_dir}/ae/config.yaml",
        ae_weights=f"{DEMO.latent_dir}/ae/weights.safetensors",
    log:
        f"{DEMO.root}/logs/latents.log",
    conda:
        "../envs/skyquilt.yaml"
    threads: DEMO.threads
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        held_out=list(DEMO.dataset.held_out),
    script:
        "../scripts/demo_latents.py"


rule demo_denoiser:
    """The blanket denoiser, trained on latent windows of the training period (best + last
    weights, training log)."""
    input:
        dataset=rules.demo_dataset.output.dataset,
        latents=rules.demo_latents.output.latents,
        stats=rules.demo_latents.output.stats,
        ae_config=rules.demo_latents.output.ae_config,
        ae_weights=rules.demo_latents.output.ae_weights,
    output:
        config=f"{DEMO.model_path}/config.yaml",
        best=f"{DEMO.model_path}/best.safetensors",
        last=f"{DEMO.model_path}/last.safetensors",
        log=f"{DEMO.model_path}/train_log.csv",
    log:
        f"{DEMO.root}/logs/denoiser.log",
    benchmark:
        f"{DEMO.root}/benchmarks/denoiser.tsv"
    conda:
        "../envs/skyquilt.yaml"
    threads: DEMO.threads
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        part="denoiser",
        # The sanity check's settings are not training's: changing them retrains nothing.
        settings={
            key: value
            for key, value in config["demo"]["denoiser"].items()
            if not key.startswith("sanity_")
        },
        # Its config.yaml declares the coarse model: whether there is one, and its block.
        coarse={key: config["demo"]["coarse"][key] for key in ("enabled", "block")},
        held_out=list(DEMO.dataset.held_out),
        pretrained=DEMO.pretrained,
        training=DEMO.training_settings(("dataset", "autoencoder", "denoiser")),
    script:
        "../scripts/demo_denoiser.py"


rule demo_coarse:
    """The denoiser's coarse model for two-scale composition: a blanket denoiser of block
    means of the latents, trained on windows of the training period (best + last weights,
    training log), in the denoiser's directory."""
    input:
        dataset=rules.demo_dataset.output.dataset,
        latents=rules.demo_latents.output.latents,
        stats=rules.demo_latents.output.stats,
        ae_config=rules.demo_latents.output.ae_config,
        ae_weights=rules.demo_latents.output.ae_weights,
    output:
        config=f"{DEMO.coarse_path}/config.yaml",
        best=f"{DEMO.coarse_path}/best.safetensors",
        last=f"{DEMO.coarse_path}/last.safetensors",
        log=f"{DEMO.coarse_path}/train_log.csv",
    log:
        f"{DEMO.root}/logs/coarse.log",
    benchmark:
        f"{DEMO.root}/benchmarks/coarse.tsv"
    conda:
        "../envs/skyquilt.yaml"
    threads: DEMO.threads
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        part="coarse",
        coarse=config["demo"]["coarse"],
        held_out=list(DEMO.dataset.held_out),
        pretrained=DEMO.pretrained,
        training=DEMO.training_settings(("dataset", "autoencoder", "coarse")),
    script:
        "../scripts/demo_denoiser.py"


rule demo_sanity:
    """The demo model judged as the run uses it: decoded composed trajectories (the run's
    overlap, sampler and steps) against the held-out states, with the climate diagnostics'
    target bands. A model that misses them is named in the log and the report."""
    input:
        dataset=rules.demo_dataset.output.dataset,
        config=rules.demo_denoiser.output.config,
        best=rules.demo_denoiser.output.best,
        stats=rules.demo_latents.output.stats,
        ae_config=rules.demo_latents.output.ae_config,
        ae_weights=rules.demo_latents.output.ae_weights,
        # The coarse model's files when the run composes two_scale.
        coarse=lambda wildcards: [
            path for key, path in get_model_files().items() if key.startswith("coarse")
        ],
    output:
        sanity=f"{DEMO.model_path}/sanity.json",
        table=report(
            f"{DEMO.model_path}/sanity.csv",
            caption="../report/sanity.rst",
            category="Demo model",
        ),
    log:
        f"{DEMO.root}/logs/sanity.log",
    conda:
        "../envs/skyquilt.yaml"
    threads: DEMO.threads
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        held_out=list(DEMO.dataset.held_out),
        # A function: read when the DAG is built, after the run's config got its defaults.
        sampling=lambda wildcards: DEMO.sanity_sampling(config),
    script:
        "../scripts/demo_sanity.py"


if DEMO.export:

    rule demo_export:
        """The trained autoencoder and denoiser, with the dataset's fingerprint and the
        settings they were trained with, written to demo.export (`make demo-train`).
        """
        input:
            dataset=rules.demo_dataset.output.dataset,
            autoencoder=rules.demo_autoencoder.output.config,
            denoiser=rules.demo_denoiser.output.config,
            best=rules.demo_denoiser.output.best,
            coarse=rules.demo_coarse.output.config,
            coarse_best=rules.demo_coarse.output.best,
        output:
            fingerprint=f"{DEMO.export}/fingerprint.json",
        log:
            f"{DEMO.root}/logs/export.log",
        params:
            training=DEMO.training_settings(),
        script:
            "../scripts/demo_export.py"

rule gallery:
    """Truth and the first members of one start date at the configured lead hours."""
    input:
        unpack(get_gallery_inputs),
    output:
        report(
            PRODUCTS.gallery_path("{size}", "{date}", "{field}"),
            caption="../report/gallery.rst",
            category="Galleries",
            subcategory="{size}h trajectories",
            labels={"start date": "{date}", "field": "{field}"},
        ),
    log:
        PLAN.log_path("render/{size}h/gallery/{date}/{field}"),
    conda:
        "../envs/skyquilt.yaml"
    threads: get_threads("gallery")
    resources:
        **get_resources("gallery"),
    params:
        field=get_field,
        lead_hours=lambda wildcards: PRODUCTS.gallery_lead_hours(wildcards.size),
        quantile=PRODUCTS.quantile,
        truth=get_truth_fingerprint(PRODUCTS.render_fields),
    script:
        "../scripts/gallery.py"


rule frames:
    """Frames of one member beside the truth, for one chunk of its states."""
    input:
        unpack(get_frames_inputs),
    output:
        temp(
            directory(
                PRODUCTS.frames_dir(
                    "{size}", "{date}", "{member}", "{field}", "{chunk}"
                )
            )
        ),
    log:
        PLAN.log_path("render/{size}h/frames/{date}/{member}/{field}-{chunk}"),
    conda:
        "../envs/skyquilt.yaml"
    threads: get_threads("frames")
    resources:
        **get_resources("frames"),
    params:
        field=get_field,
        indices=get_frame_indices,
        quantile=PRODUCTS.quantile,
        truth=get_truth_fingerprint(PRODUCTS.render_fields),
    script:
        "../scripts/frames.py"


rule animation:
    """One member beside the truth as a GIF (and an MP4 when ffmpeg is available), from
    frames jobs or rendered here."""
    input:
        unpack(get_animation_inputs),
    output:
        **get_animation_outputs(),
    log:
        PLAN.log_path("render/{size}h/animation/{date}/{member}/{field}"),
    conda:
        "../envs/skyquilt.yaml"
    threads: get_threads("animation")
    resources:
        **get_resources("animation"),
    params:
        field=get_field,
        quantile=PRODUCTS.quantile,
        truth=get_truth_fingerprint(PRODUCTS.render_fields),
        fps=PRODUCTS.fps,
    script:
        "../scripts/animation.py"

rule generate:
    """One ensemble member: its whole trajectory denoised at once from composed blankets."""
    input:
        **get_model_files(),
    output:
        directory(PLAN.shard_path("{size}", "{date}", "{member}")),
    log:
        PLAN.log_path("generate/{size}h/{date}/{member}"),
    conda:
        "../envs/skyquilt.yaml"
    threads: get_threads("generate")
    resources:
        **get_resources("generate"),
    params:
        # Constants rather than functions: Snakemake evaluates per-job functions for every
        # member, which dominates planning time for tens of thousands of members.
        settings=PLAN.settings.to_json(),
        # Not a str, so not recorded: changing generation.checkpoint reruns no member.
        checkpoint=PLAN.checkpoint_arguments,
        launcher=get_launcher(),
        script=os.path.join(workflow.basedir, "scripts", "generate.py"),
    shell:
        "{params.launcher} {params.script:q} --settings {params.settings:q} --size {wildcards.size} --date {wildcards.date}"
        " --member {wildcards.member} --output {output:q} --threads {threads} {params.checkpoint}"
        " > {log:q} 2>&1"

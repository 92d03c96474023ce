rule generate:
    """One ensemble member: its whole trajectory denoised at once from composed blankets."""
    input:
        **get_model_files(),
    output:
        directory(PLAN.shard("{size}", "{date}", "{member}")),
    log:
        f"{PLAN.output_dir}/logs/{PLAN.run}/generate/{{size}}h/{{date}}/{{member}}.log",
    conda:
        "../envs/skyquilt.yaml"
    threads: get_threads("gen")
    resources:
        **get_resources("gen"),
    params:
        request=lambda wildcards: PLAN.request(
            wildcards.size, wildcards.date, wildcards.member
        ),
        launcher=get_launcher,
        model_path=lambda wildcards, input: os.path.dirname(input.config),
        script=os.path.join(workflow.basedir, "scripts", "generate.py"),
    shell:
        "{params.launcher} {params.script:q}"
        " --model-path {params.model_path:q} --request {params.request:q}"
        " --output {output:q} --threads {threads} > {log:q} 2>&1"

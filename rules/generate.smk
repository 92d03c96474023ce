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
        # Constants rather than functions: Snakemake evaluates per-job functions for every
        # member, which dominates planning time for tens of thousands of members.
        settings=PLAN.settings(),
        launcher=get_launcher(),
        script=os.path.join(workflow.basedir, "scripts", "generate.py"),
    shell:
        "{params.launcher} {params.script:q} --model-path $(dirname {input.config:q})"
        " --settings {params.settings:q} --size {wildcards.size} --date {wildcards.date}"
        " --member {wildcards.member} --output {output:q} --threads {threads} > {log:q} 2>&1"

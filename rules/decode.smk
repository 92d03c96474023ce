rule decode:
    """One member's latents decoded to physical fields (WeatherBench2 layout), a few states
    at a time; reused by every render and evaluation."""
    input:
        unpack(get_decode_inputs),
    output:
        directory(PRODUCTS.decoded("{size}", "{date}", "{member}")),
    log:
        f"{PLAN.output_dir}/logs/{PLAN.run}/decode/{{size}}h/{{date}}/{{member}}.log",
    conda:
        "../envs/skyquilt.yaml"
    threads: get_threads("decode")
    resources:
        **get_resources("decode"),
    params:
        model_path=PLAN.model_path,
        states_per_chunk=PRODUCTS.states_per_chunk,
    script:
        "../scripts/decode.py"

rule decode:
    """One member's latents decoded to physical fields (WeatherBench2 layout), a few states
    at a time; reused by every render and evaluation."""
    input:
        unpack(get_decode_inputs),
    output:
        directory(PRODUCTS.decoded_path("{size}", "{date}", "{member}")),
    log:
        PLAN.log_path("decode/{size}h/{date}/{member}"),
    conda:
        "../envs/skyquilt.yaml"
    threads: get_threads("decode")
    resources:
        **get_resources("decode"),
    params:
        model_path=PLAN.settings.model_path,
        states_per_chunk=PRODUCTS.states_per_chunk,
        # Content fingerprints: a new decoder or grid reruns the decoding, whatever the times.
        fingerprints=get_decode_fingerprints,
    script:
        "../scripts/decode.py"

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/generate.smk"
include: "rules/aggregate.smk"


rule all:
    default_target: True
    input:
        get_trajectories(),
        get_all_shards(),

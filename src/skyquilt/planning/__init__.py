"""Planning: what the workflow computes when Snakemake parses it, before any job runs.

`workflow.parse_config` is the entry point: every parse-time check of the config, in order, and
the run's plan (`plan`), its on-request products (`products`) and the demo's plan (`demo`).
The checks, one concept per module: `errors` (the one-line ConfigError), `yaml_values`,
`dates`, `paths`, `ensemble`, `model` (the model directory), `resources` (hardware ->
resources), `dataset_checks` (whether a decode, render, evaluate or statistics request can be
served). Everything a run that submits to SLURM needs is in the `slurm` package.
Torch-free, so that `snakemake -n` stays fast: it may import the torch-free modules
`skyquilt.sampling.request`, `.blankets`, `.seeding`, `skyquilt.models.config`,
`.weight_files`, `.backbones`, `.blanket_net_options`, `skyquilt.diffusion.options` and
`skyquilt.io.video`; never the jobs, scores or plots.
"""

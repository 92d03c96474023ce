"""Planning: what the workflow computes when Snakemake parses it, before any job runs.

Config parsing and checks, the run plan (settings, members, paths), the products asked for
(decode, render, evaluate), hardware -> resources and the launcher command, the demo's plan,
and the SLURM preflight and queue summaries of a run that submits to SLURM (`cluster`,
`preflight`, `slurm_run`).
Torch-free, so that `snakemake -n` stays fast: it may import the torch-free modules
`skyquilt.sampling.request`, `.blankets`, `.seeding`, `skyquilt.models.config`,
`skyquilt.diffusion.options` and `skyquilt.io.video`; never the jobs, scores or plots.
"""

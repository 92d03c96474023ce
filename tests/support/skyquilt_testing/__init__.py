"""Helpers of skyquilt's tests and benchmarks: random models, configs, a real snakemake
runner, decodable worlds, the live SLURM cluster and plug-in backbones for fault tests.

Installed (editable) beside skyquilt by `make install`; never part of skyquilt itself.
"""

"""Jobs: one module per Snakemake job, plus the logging they share.

The jobs are generate, aggregate, decode, render, evaluate and statistics. This is the only
code that scripts/ calls; it may import every other layer.
"""

"""Jobs: one module per Snakemake job, plus the logging they share.

The jobs are generate, aggregate, decode, render, evaluate and statistics. The only code that
scripts/
calls; may import every other layer.
"""

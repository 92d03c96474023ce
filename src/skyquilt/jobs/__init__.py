"""Jobs: one module per Snakemake job, plus the logging they share.

The jobs are generate, aggregate, decode, render and evaluate. The only code that scripts/
calls; may import every other layer.
"""

"""Jobs: one module per Snakemake job (generate, aggregate, decode, render, evaluate) plus the
logging they share. The only code that scripts/ calls; may import every other layer.
"""

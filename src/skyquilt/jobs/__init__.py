"""Jobs: the work of each Snakemake rule, plus what they share (logging, memory, arguments).

One module per kind of job, named after its rule: generate, aggregate, verify, decode, render
(the rules gallery, frames, animation), evaluation, composition_fidelity, ensemble_statistics
(also latent_ensemble_statistics), and demo (the demo's rules). This is the only code that
scripts/ calls; it may import every other layer.
"""

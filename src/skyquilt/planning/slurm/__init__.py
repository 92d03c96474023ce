"""The cluster as SLURM sees it: everything skyquilt does for a run that submits to SLURM.

Read first `executor`: it is what the workflow calls (rules/slurm.smk) once the DAG is built,
and it says whether the run submits to SLURM at all; runs on this machine call no SLURM
command. Then, in the order a run meets them:

- `job_paths`: the run's paths must reach a SLURM job's command line intact;
- `cluster`: what the cluster offers, read with at most three client calls;
- `preflight`: the run checked against it (status queries, account, partitions, limits, GPUs);
- `queue`: while the run waits, its jobs by state, logged every few minutes;
- `launcher`: how a generation job starts (python, torchrun, srun across nodes) and the
  warning SLURM sends it before its time limit.

Planning layer: torch-free, imports only the standard library and `skyquilt.planning`.
"""

"""How a generation job runs under SLURM: the command that starts it, and the warning SLURM
sends it before its time limit.

One process, or torchrun with one process per GPU: standalone on one node, and across nodes
one torchrun per node, started by `srun` inside the job's allocation. Torch-free; imports only
the standard library.
"""

import shlex
import sys

# The signal SLURM sends a generation job before its time limit (`sbatch --signal`), on which
# the job checkpoints and ends (skyquilt.sampling.stopping). Without the B: prefix SLURM signals
# every process of the job's steps: the generation processes, but also the Snakemake process
# and the shell that run them, which would die of USR1 (its default action) and take the job
# down before its checkpoint is written. URG is ignored by every process that does not handle
# it. With B:, only the batch shell that the executor plugin writes would get the signal.
TIME_LIMIT_SIGNAL = "URG"


def time_limit_warning(minutes: int) -> int:
    """Seconds before a time limit of `minutes` at which SLURM warns a generation job.

    A tenth of the limit, at least a minute and at most ten (a sampler step and a checkpoint
    must fit), and never more than half the limit. SLURM may send it up to a minute earlier.
    """
    seconds = 60 * minutes
    return min(max(seconds // 10, 60), 600, seconds // 2)


def launcher_command(processes: int, nodes: int = 1) -> str:
    """How a generation job starts its script: one process, or torchrun with P processes.

    On one node torchrun runs standalone; across nodes (P GPUs > gpus_per_node) every node
    runs one torchrun that meets the others through c10d rendezvous on the allocation's
    first node, which the job resolves from SLURM_JOB_NODELIST when it starts. The job
    already runs inside the SLURM executor's own job step, so the inner srun shares its
    resources (--overlap) instead of waiting for them.
    """
    python = shlex.quote(sys.executable)
    if processes <= 1:
        return python
    torchrun = f"{python} -m torch.distributed.run"
    if nodes <= 1:
        return f"{torchrun} --standalone --nproc-per-node {processes}"
    per_node = -(-processes // nodes)
    first_node = '$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'
    return (
        f"srun --overlap --nodes {nodes} --ntasks-per-node 1 {torchrun} --nnodes {nodes} "
        f"--nproc-per-node {per_node} --rdzv-backend c10d "
        f'--rdzv-endpoint "{first_node}:29500" --rdzv-id "$SLURM_JOB_ID"'
    )

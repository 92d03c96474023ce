"""Generation job: one ensemble member (run by rule `generate`, possibly under torchrun)."""

import argparse

from skyquilt.jobs.generate import run_generation
from skyquilt.jobs.logs import failure_last
from skyquilt.planning.plan import member_checkpoint
from skyquilt.sampling.checkpoints import CheckpointPolicy
from skyquilt.sampling.request import RunSettings


def interval(text: str) -> float | None:
    """A checkpoint interval: a number, or 'none'."""
    return None if text.lower() in ("none", "null") else float(text)


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--settings", required=True, help="JSON settings of the run")
parser.add_argument("--size", required=True, help="trajectory size T")
parser.add_argument("--date", required=True, help="start date label YYYY-MM-DDTHH")
parser.add_argument("--member", required=True, help="member index")
parser.add_argument("--output", required=True, help="shard path <...>/<member>.zarr")
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--checkpoint", default=None, help="checkpoint file of the member")
parser.add_argument(
    "--checkpoint-dir", default=None, help="checkpoints of the run: <dir>/<T>h/<date>/<member>.pt"
)
parser.add_argument("--checkpoint-every-steps", type=interval, default=None)
parser.add_argument("--checkpoint-every-minutes", type=interval, default=10.0)
arguments = parser.parse_args()
settings = RunSettings.from_json(arguments.settings)
request = settings.member(arguments.size, arguments.date, arguments.member)
with failure_last(exit_quietly=True):  # stderr is the rule's log: it ends with the traceback
    checkpoint = arguments.checkpoint
    if checkpoint is None and arguments.checkpoint_dir is not None:
        checkpoint = member_checkpoint(
            arguments.checkpoint_dir, arguments.size, arguments.date, arguments.member
        )
    steps = arguments.checkpoint_every_steps
    policy = CheckpointPolicy(
        every_steps=None if steps is None else int(steps),
        every_minutes=arguments.checkpoint_every_minutes,
    )
    status = run_generation(request, arguments.output, arguments.threads, checkpoint, policy)
# 75 when a signal stopped sampling with a checkpoint written (skyquilt.jobs.generate).
raise SystemExit(status)

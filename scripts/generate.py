"""Generation job: one ensemble member (run by rule `generate`, possibly under torchrun)."""

import argparse

from skyquilt.jobs.generate import run_generation
from skyquilt.jobs.logs import failure_last
from skyquilt.sampling.request import RunSettings

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--settings", required=True, help="JSON settings of the run")
parser.add_argument("--size", required=True, help="trajectory size T")
parser.add_argument("--date", required=True, help="start date label YYYY-MM-DDTHH")
parser.add_argument("--member", required=True, help="member index")
parser.add_argument("--output", required=True, help="shard path <...>/<member>.zarr")
parser.add_argument("--threads", type=int, default=1)
arguments = parser.parse_args()
settings = RunSettings.from_json(arguments.settings)
request = settings.member(arguments.size, arguments.date, arguments.member)
with failure_last(exit_quietly=True):  # stderr is the rule's log: it ends with the traceback
    run_generation(request, arguments.output, arguments.threads)

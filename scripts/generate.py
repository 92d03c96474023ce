"""Generation job: one ensemble member (run by rule `generate`, possibly under torchrun)."""

import argparse

from skyquilt.jobs import run_generation
from skyquilt.workflow import member_request

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--model-path", required=True)
parser.add_argument("--settings", required=True, help="JSON settings of the run")
parser.add_argument("--size", required=True, help="trajectory size T")
parser.add_argument("--date", required=True, help="start date label YYYY-MM-DDTHH")
parser.add_argument("--member", required=True, help="member index")
parser.add_argument("--output", required=True, help="shard path <...>/<member>.zarr")
parser.add_argument("--threads", type=int, default=1)
arguments = parser.parse_args()
request = member_request(arguments.settings, arguments.size, arguments.date, arguments.member)
run_generation(arguments.model_path, request, arguments.output, arguments.threads)

"""Generation job: one ensemble member (run by rule `generate`, possibly under torchrun)."""

import argparse

from skyquilt.jobs import run_generation

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--model-path", required=True)
parser.add_argument("--request", required=True, help="JSON settings of the member")
parser.add_argument("--output", required=True, help="shard path <...>/<member>.zarr")
parser.add_argument("--threads", type=int, default=1)
arguments = parser.parse_args()
run_generation(arguments.model_path, arguments.request, arguments.output, arguments.threads)

"""Aggregate memory: peak resident memory of the aggregate job with 4 vs 64 members.

Issue 7, point 4. Members of the same size (T = 240 states of a (8, 32, 64) latent, 15.7 MB
each, large enough that loading every member at once would show) are written as shards;
then skyquilt.jobs.aggregate.run_aggregate merges 4 and 64 of them, each in a fresh process that
reports its own peak resident memory (VmHWM). Target: peak(64) / peak(4) <= 1.25.
Also reported: the 64-member throughput in MB/s of latents, and the peak of a process that
only imports skyquilt.jobs.aggregate (the floor of an aggregate job).
"""

import json
import shutil
import sys

import numpy as np
from common import OUTPUT, PYTHON, parser, record, reporting_peak, run_command

from skyquilt.io.shards import write_shard
from skyquilt.sampling.request import RunSettings
from skyquilt.sampling.timestamps import trajectory_times

TARGET = 1.25
SIZE = 240
LATENT_SHAPE = (8, 32, 64)
START = "2000-04-03T00"
SETTINGS = RunSettings(
    model_path="benchmark", model_target="best", sampler="lms", sampler_options={}, steps=1,
    precision="float32", overlap=4, stitch="symmetric", seed=0,
)  # fmt: skip
AGGREGATE = reporting_peak(
    """
import json, sys, time
from skyquilt.jobs.aggregate import run_aggregate
from skyquilt.sampling.request import RunSettings
shards, output, settings, size, dates, members = json.loads(sys.argv[1])
began = time.perf_counter()
run_aggregate(shards, output, RunSettings.from_json(settings), size, dates, members)
print(json.dumps({"seconds": time.perf_counter() - began, "peak_mb": peak_mb()}))
"""
)
IMPORT_ONLY = reporting_peak(
    """
import json
import skyquilt.jobs.aggregate
print(json.dumps({"peak_mb": peak_mb()}))
"""
)


def write_members(directory, count: int, size: int, latent_shape: tuple) -> list[str]:
    """`count` member shards of one start date, random standardised latents."""
    times = trajectory_times(np.datetime64(START, "ns"), size, 1)
    generator = np.random.default_rng(0)
    paths = []
    for member in range(count):
        path = directory / f"{member}.zarr"
        if not path.exists():
            latent = generator.standard_normal((size, *latent_shape), dtype=np.float32)
            attrs = SETTINGS.member(size, START, member).provenance()
            attrs |= {"blanket_size": 8, "padded_size": size}
            write_shard(path, latent, times, attrs)
        paths.append(str(path))
    return paths


def aggregate_once(shards: list[str], output, size: int) -> tuple[float, float]:
    """Peak RSS (MB) and in-process seconds of run_aggregate for `shards`, in a fresh process."""
    shutil.rmtree(output, ignore_errors=True)
    members = list(range(len(shards)))
    job = json.dumps([shards, str(output), SETTINGS.to_json(), size, [START], members])
    _, printed = run_command([PYTHON, "-c", AGGREGATE, job])
    measured = json.loads(printed.splitlines()[-1])
    return measured["peak_mb"], measured["seconds"]


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--members", type=int, nargs=2, default=[4, 64])
    arguments.add_argument("--size", type=int, default=SIZE)
    arguments.add_argument("--repeats", type=int, default=1)
    arguments = arguments.parse_args()
    size = 24 if arguments.quick else arguments.size
    small, large = (2, 8) if arguments.quick else arguments.members
    latent_shape = (4, 8, 16) if arguments.quick else LATENT_SHAPE
    root = OUTPUT / "aggregate_memory" / f"{size}h-{'x'.join(map(str, latent_shape))}"
    shards = write_members(root / "shards", large, size, latent_shape)
    member_mb = size * int(np.prod(latent_shape)) * 4 / 1e6

    floor = json.loads(run_command([PYTHON, "-c", IMPORT_ONLY])[1].splitlines()[-1])["peak_mb"]
    peaks = {small: [], large: []}
    seconds = []
    for _ in range(arguments.repeats):
        for count in (small, large):
            output = root / f"trajectories-{count}.zarr"
            peak, wall = aggregate_once(shards[:count], output, size)
            shutil.rmtree(output)  # up to 1 GB; the shards stay for the next run
            peaks[count].append(peak)
            if count == large:
                seconds.append(wall)
    peak_small, peak_large = min(peaks[small]), min(peaks[large])
    ratio = peak_large / peak_small
    record(
        arguments,
        "aggregate_memory",
        f"peak RSS {large} members / {small} members",
        ratio,
        f"<= {TARGET}",
        ratio <= TARGET,
        {"members": [small, large], "T": size, "latent_shape": list(latent_shape),
         "member_mb": round(member_mb, 2), "repeats": arguments.repeats},
        {f"peak_{small}_mb": round(peak_small), f"peak_{large}_mb": round(peak_large),
         "import_only_mb": round(floor),
         "throughput_mb_s": round(large * member_mb / min(seconds), 1),
         f"process_{large}_s": round(min(seconds), 2)},
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())

"""Statistics memory: peak resident memory of the ensemble-statistics job, 16 vs 256 members.

Synthetic decoded members of one start date in the decode job's layout
(T = 16 states of 3 variables on a 64 x 128 grid, 8 states per chunk: 1.6 MB each, 400 MB for
256, enough to show if the job loaded the ensemble) are written once; then
skyquilt.jobs.ensemble_statistics.run_statistics computes the mean, std, min, max and the 0.05,
0.5 and 0.95 quantiles of the first 16 and of all 256, each in a fresh process that reports its own
peak resident memory (VmHWM). Target: peak(256) / peak(16) <= 1.25.

The quantile blocks hold at most `--block-mb` of member values (the job's `statistics.block_mb`);
the default here, 4 MB, is what 16 members of one 8-state chunk already fill, so both sides
hold a full block and the ratio shows only what grows with the number of members. Also
reported: members/s of each side, and the peak of a process that only imports the job.
"""

import json
import shutil
import sys

from common import OUTPUT, PYTHON, parser, record, reporting_peak, run_command
from skyquilt_testing.decoding import write_decoded_members

TARGET = 1.25
STATES = 16
GRID = (64, 128)
STATISTICS = reporting_peak(
    """
import json, sys, time
from skyquilt.jobs.ensemble_statistics import run_statistics
members, output, block_mb = json.loads(sys.argv[1])
began = time.perf_counter()
run_statistics(members, output, (0.05, 0.5, 0.95), block_mb=block_mb)
print(json.dumps({"seconds": time.perf_counter() - began, "peak_mb": peak_mb()}))
"""
)
IMPORT_ONLY = reporting_peak(
    """
import json
import skyquilt.jobs.ensemble_statistics
print(json.dumps({"peak_mb": peak_mb()}))
"""
)


def statistics_once(members: list[str], output, block_mb: float) -> tuple[float, float]:
    """Peak RSS (MB) and in-process seconds of run_statistics, in a fresh process."""
    shutil.rmtree(output, ignore_errors=True)
    job = json.dumps([members, str(output), block_mb])
    _, printed = run_command([PYTHON, "-c", STATISTICS, job])
    shutil.rmtree(output)
    measured = json.loads(printed.splitlines()[-1])
    return measured["peak_mb"], measured["seconds"]


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--members", type=int, nargs=2, default=[16, 256])
    arguments.add_argument("--block-mb", type=float, default=4.0)
    arguments.add_argument("--repeats", type=int, default=1)
    arguments = arguments.parse_args()
    small, large = (2, 8) if arguments.quick else arguments.members
    states, grid = (4, (8, 16)) if arguments.quick else (STATES, GRID)
    root = OUTPUT / "statistics_memory" / f"{states}h-{grid[0]}x{grid[1]}"
    members = [
        str(path)
        for path in write_decoded_members(root / "decoded", large, states, grid, states_per_chunk=8)
    ]
    member_mb = states * grid[0] * grid[1] * 3 * 4 / 1e6

    floor = json.loads(run_command([PYTHON, "-c", IMPORT_ONLY])[1].splitlines()[-1])["peak_mb"]
    peaks = {small: [], large: []}
    seconds = {small: [], large: []}
    for _ in range(arguments.repeats):
        for count in (small, large):
            output = root / f"statistics-{count}.zarr"
            peak, wall = statistics_once(members[:count], output, arguments.block_mb)
            peaks[count].append(peak)
            seconds[count].append(wall)
    peak_small, peak_large = min(peaks[small]), min(peaks[large])
    ratio = peak_large / peak_small
    record(
        arguments,
        "statistics_memory",
        f"peak RSS {large} members / {small} members",
        ratio,
        f"<= {TARGET}",
        ratio <= TARGET,
        {"members": [small, large], "T": states, "grid": list(grid), "variables": 3,
         "member_mb": round(member_mb, 2), "block_mb": arguments.block_mb,
         "repeats": arguments.repeats},
        {f"peak_{small}_mb": round(peak_small), f"peak_{large}_mb": round(peak_large),
         "import_only_mb": round(floor),
         f"members_per_s_{small}": round(small / min(seconds[small]), 1),
         f"members_per_s_{large}": round(large / min(seconds[large]), 1),
         f"process_{large}_s": round(min(seconds[large]), 2)},
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())

"""Workflow scale: wall time of `snakemake -n` for skyquilt vs a bare Snakefile of the same shape.

Issue 7, point 6. For each job count (1,000 / 10,000 / 30,000 generation jobs = dates x 20
members of one trajectory size) both workflows plan the same DAG in the same run: skyquilt's
Snakefile with a full config (schema validation, the plan, the model config) and
benchmarks/bare/Snakefile (same wildcards, one generate rule, one aggregate rule, `all`
listing every aggregate and every shard, no logic). Target: skyquilt within 1.3x of bare.

    python benchmarks/workflow_scale.py [--jobs 1000 10000 30000] [--quick] [--profile]

--profile writes a cProfile of skyquilt's largest dry run to benchmarks/output/.

Both sides run with a `scontrol` on PATH that fails at once: Snakemake's SLURM executor
plugin, loaded by every `snakemake` call, asks `scontrol show config` for MinJobAge, which
hangs for up to 10 s while a local slurmctld restarts (the SLURM tests do that); it is no
cost of either workflow.
"""

import datetime as dt
import os
import shutil
import sys
from pathlib import Path

import yaml
from common import (
    OUTPUT,
    REPO,
    best_of,
    model_label,
    model_path,
    parser,
    record,
    run_command,
    run_config,
)

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
BARE = Path(__file__).resolve().parent / "bare/Snakefile"
MEMBERS = 20
TARGET = 1.3


def start_dates(count: int) -> list[str]:
    """`count` distinct start dates 'YYYY-MM-DD Hh', twelve hours apart from 2000-01-01."""
    first = dt.datetime(2000, 1, 1)
    moments = (first + dt.timedelta(hours=12 * index) for index in range(count))
    return [f"{moment:%Y-%m-%d} {moment.hour}h" for moment in moments]


def write_workdirs(root: Path, config: dict, model: Path, jobs: int) -> tuple[Path, Path]:
    """Working directories of both workflows for `jobs` generation jobs of `config`."""
    dates = start_dates(jobs // MEMBERS)
    skyquilt, bare = root / f"skyquilt-{jobs}", root / f"bare-{jobs}"
    for directory in (skyquilt, bare):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    config = dict(config)
    config.update(
        model_path=str(model), start_dates=dates, num_samples_per_date=MEMBERS, trajectory_sizes=72
    )
    (skyquilt / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    labels = [f"{text[:10]}T{int(text[11:-1]):02d}" for text in dates]
    bare_config = {"model_path": str(model), "sizes": [72], "dates": labels, "members": MEMBERS}
    (bare / "config.yaml").write_text(yaml.safe_dump(bare_config, sort_keys=False))
    return skyquilt, bare


def without_scontrol(root: Path) -> dict:
    """Environment whose PATH starts with a `scontrol` that exits 1 immediately."""
    shim = root / "bin/scontrol"
    shim.parent.mkdir(parents=True, exist_ok=True)
    shim.write_text("#!/bin/sh\nexit 1\n")
    shim.chmod(0o755)
    return {"PATH": f"{shim.parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def dry_run(snakefile: Path, workdir: Path) -> list[str]:
    return [
        SNAKEMAKE,
        "-n",
        "--quiet",
        "rules",
        "--snakefile",
        str(snakefile),
        "--configfile",
        str(workdir / "config.yaml"),
        "--directory",
        str(workdir),
    ]


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--jobs", type=int, nargs="+", default=[1000, 10000, 30000])
    arguments.add_argument(
        "--repeats", type=int, default=None, help="default: 3, 2, 1 for <= 1,000, 10,000, more"
    )
    arguments.add_argument("--profile", action="store_true")
    arguments = arguments.parse_args()
    sizes = [200] if arguments.quick else arguments.jobs
    model = model_path(arguments)
    root = OUTPUT / "workflow_scale"
    env = without_scontrol(root)
    for jobs in sizes:
        repeats = arguments.repeats or (1 if arguments.quick else min(3, max(1, 20000 // jobs)))
        skyquilt, bare = write_workdirs(root, run_config(arguments), model, jobs)
        commands = {
            "skyquilt": (dry_run(REPO / "Snakefile", skyquilt), skyquilt),
            "bare": (dry_run(BARE, bare), bare),
        }
        skyquilt_s, bare_s = best_of(
            repeats,
            *(
                lambda c=command, w=workdir: run_command(c, cwd=w, env=env)
                for command, workdir in commands.values()
            ),
        )
        ratio = skyquilt_s / bare_s
        record(
            arguments,
            "workflow_scale",
            "skyquilt / bare snakemake -n time",
            ratio,
            f"<= {TARGET}",
            ratio <= TARGET,
            {"generate_jobs": jobs, "dates": jobs // MEMBERS, "members": MEMBERS,
             "repeats": repeats, "model": model_label(model)},
            {"skyquilt_s": round(skyquilt_s, 2), "bare_s": round(bare_s, 2)},
        )  # fmt: skip
    if arguments.profile:
        profile = OUTPUT / f"workflow_scale-{sizes[-1]}.prof"
        command, workdir = commands["skyquilt"]
        run_command([sys.executable, "-m", "cProfile", "-o", str(profile), *command],
                    cwd=workdir, env=env)  # fmt: skip
        print(f"profile written to {profile}")


if __name__ == "__main__":
    main()

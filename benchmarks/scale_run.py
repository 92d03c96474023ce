"""Scale run: one large ensemble of the demo model end to end, with the real workflow.

Issue 16, point 3. In a working directory of its own (default benchmarks/output/scale,
git-ignored), the config is config/config.yaml with the ensemble replaced: `--dates` start
dates early in the demo's held-out period (see `start_dates`), `--members` per date,
trajectories of `--size` states, and generation jobs of one thread (two members at a time on
two cores, see BENCHMARKS.md, "Threads"). Then `snakemake --cores N` runs stage by stage, each
a separate call, timed on its own:

    model       the demo model, dataset and sanity check, by the workflow unless up to date
    plan        `snakemake -n` of the whole chain
    generate    every member (one job each)
    aggregate   the members of each size, merged shard by shard
    latent      latent mean, std and checksums from the aggregate (rule latent_statistics)
    decode      every member decoded to physical fields (one job each)
    statistics  ensemble mean, std, min, max, quantiles per start date (rule statistics)
    evaluate    scores, rank histograms, baselines (rule evaluate)

While a stage runs, a thread samples the process tree of its `snakemake` every 0.2 s: each
job process's peak resident memory (VmHWM, a high-water mark, so at most the growth of a
job's last 0.2 s can be missed), its lifetime, snakemake's own peak, and the load average.
The table (markdown) and the numbers (JSON) go to <workdir>/<run>.md and .json; with
evaluate done, the scores of the model and the climatology ensemble are summarised too.

    nice -n 10 .venv/bin/python benchmarks/scale_run.py             # 4 dates x 64, T = 72
    .venv/bin/python benchmarks/scale_run.py --dates 2 --members 4  # small, same settings
    .venv/bin/python benchmarks/scale_run.py --demo-from ../other/resources/demo

--config replaces config/config.yaml as the base of the run's config, e.g. to keep the demo
settings a long run was generated with when the defaults change (a `demo:` section pinning
them), so that Snakemake does not rebuild the model and every member.

--demo-from copies a demo built elsewhere (`make demo`'s resources/demo) into the working
directory first; Snakemake's rerun triggers then decide what the model stage rebuilds.
Each run starts from no outputs of its own (`run: scale-<dates>x<members>-T<size>`), unless
--from-stage continues one; the demo model is kept between runs. Locally Snakemake runs one
process per job (it ignores `--groups`); BENCHMARKS.md says how to group them on SLURM.
"""

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from dataclasses import field as default
from pathlib import Path

import numpy as np
import yaml
from common import OUTPUT, REPO, machine
from workflow_scale import without_scontrol

from skyquilt.planning.demo import make_demo_plan

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
INTERVAL = 0.2
SETTINGS = ("dates", "members", "size", "cores", "job_threads")
SPACING = 36  # hours between start dates: they alternate between 0h and 12h
# Job processes are told apart by the script they run (scripts/<name>.py, or Snakemake's
# copy .snakemake/scripts/tmp<random>.<name>.py of a `script:` rule).
SCRIPT = re.compile(r"(?:^|/)(?:tmp\w+\.)?(\w+)\.py$")


@dataclass
class Process:
    """A process seen under a stage's snakemake: its command, peak memory and lifetime."""

    script: str | None
    peak_mb: float = 0.0
    first: float = 0.0
    last: float = 0.0


@dataclass
class Stage:
    """What one stage measured."""

    name: str
    wall_s: float = 0.0
    returncode: int = 0
    steps: tuple[int, int] = (0, 0)  # (done, planned)
    processes: dict[int, Process] = default(default_factory=dict)
    snakemake_peak_mb: float = 0.0
    loads: list[float] = default(default_factory=list)

    def jobs(self) -> list[Process]:
        """The job processes: Python running one of the workflow's scripts."""
        return [process for process in self.processes.values() if process.script]

    def summary(self) -> dict:
        jobs = self.jobs()
        peaks = [job.peak_mb for job in jobs]
        walls = [job.last - job.first for job in jobs]
        return {
            "stage": self.name,
            "wall_s": round(self.wall_s, 1),
            "complete": self.returncode == 0,
            "snakemake_steps": list(self.steps),
            "job_processes": len(jobs),
            "scripts": sorted({job.script for job in jobs}),
            "job_peak_mb_max": round(max(peaks), 1) if peaks else None,
            "job_peak_mb_median": round(statistics.median(peaks), 1) if peaks else None,
            "job_wall_s_median": round(statistics.median(walls), 2) if walls else None,
            "snakemake_peak_mb": round(self.snakemake_peak_mb, 1),
            "load_mean": round(statistics.mean(self.loads), 2) if self.loads else None,
            "load_max": round(max(self.loads), 2) if self.loads else None,
        }


def _children() -> dict[int, list[int]]:
    """{parent pid: child pids} of every process, from /proc/<pid>/stat."""
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _descendants(root: int) -> list[int]:
    tree, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, ()))
    return found


def _peak_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _script(pid: int) -> str | None:
    """The workflow script a Python process runs, else None (snakemake, shells, ...)."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return None
    arguments = arguments.split("\0")
    if not arguments or "python" not in Path(arguments[0]).name:
        return None
    for argument in arguments[1:]:
        match = SCRIPT.search(argument)
        if match:
            return match.group(1)
    return None


def _sample(stage: Stage, root: int, stop: threading.Event) -> None:
    """Every INTERVAL s until `stop`: peak memory and lifetime of the processes under `root`."""
    next_load = 0.0
    while not stop.is_set():
        now = time.perf_counter()
        for pid in _descendants(root):
            peak = _peak_mb(pid)
            if peak is None:
                continue
            if pid == root:
                stage.snakemake_peak_mb = max(stage.snakemake_peak_mb, peak)
                continue
            process = stage.processes.get(pid)
            if process is None:
                process = stage.processes[pid] = Process(_script(pid), first=now)
            process.peak_mb, process.last = max(process.peak_mb, peak), now
        if now >= next_load:
            stage.loads.append(os.getloadavg()[0])
            next_load = now + 5.0
        stop.wait(INTERVAL)


def run_stage(name: str, command: list[str], workdir: Path, log: Path) -> Stage:
    """Run one snakemake call under the sampler, to its end (or until Ctrl-C stops it)."""
    stage = Stage(name)
    stop = threading.Event()
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"{dt.datetime.now(dt.UTC):%H:%M:%S} {name}: {' '.join(command[1:])}", flush=True)
    with log.open("w") as handle:
        began = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=workdir, stdout=handle, stderr=subprocess.STDOUT,
            env={**os.environ, **without_scontrol(workdir)},
        )  # fmt: skip
        sampler = threading.Thread(target=_sample, args=(stage, process.pid, stop))
        sampler.start()
        try:
            stage.returncode = process.wait()
        except KeyboardInterrupt:  # Ctrl-C reached snakemake too: it stops its jobs
            stage.returncode = process.wait()
        stage.wall_s = time.perf_counter() - began
        stop.set()
        sampler.join()
    # Jobs Snakemake ran of those it planned ("n of N steps"), or a dry run's "total N".
    text = log.read_text()
    ran = re.findall(r"(\d+) of (\d+) steps", text)
    planned = re.findall(r"^total\s+(\d+)", text, re.MULTILINE)
    stage.steps = [int(ran[-1][0]), int(ran[-1][1])] if ran else [0, int(max(planned, default=0))]
    print(f"  {json.dumps(stage.summary())}", flush=True)
    return stage


def start_dates(count: int, size: int, held_out: tuple[str, str]) -> list[str]:
    """`count` start dates 'YYYY-MM-DD Hh', SPACING hours apart from the held-out period's
    first hour, each with its `size` states inside the period.

    Early in the period, because the climatology ensemble draws its members from the times
    before it, within 15 days of each start's day of year: on the one-year demo dataset, only
    starts in the held-out period's first twelve days or so have any.
    """
    first = np.datetime64(held_out[0], "h")
    last = np.datetime64(held_out[1], "h") + np.timedelta64(24 - size, "h")
    moments = [first + np.timedelta64(SPACING * index, "h") for index in range(count)]
    if moments[-1] > last:
        raise SystemExit(f"{count} start dates {SPACING} h apart do not fit in {held_out}")
    moments = [moment.astype(dt.datetime) for moment in moments]
    return [f"{moment:%Y-%m-%d} {moment.hour}h" for moment in moments]


def write_config(workdir: Path, arguments: argparse.Namespace) -> dict:
    """`--config` (default config/config.yaml) with the ensemble of the scale run, written to
    <workdir>/<run>.yaml
    (one file per run: a run of another size never changes the config of one in progress)."""
    from skyquilt.planning.demo_settings import DatasetSettings

    config = yaml.safe_load(arguments.config.read_text())
    demo_dataset = DatasetSettings.from_config((config.get("demo") or {}).get("dataset") or {})
    config.update(
        start_dates=start_dates(arguments.dates, arguments.size, demo_dataset.held_out),
        num_samples_per_date=arguments.members,
        trajectory_sizes=str(arguments.size),
        run=f"scale-{arguments.dates}x{arguments.members}-T{arguments.size}",
    )
    config["hardware"]["gen"]["cpus"] = arguments.job_threads
    if arguments.steps is not None:
        config["diffusion"]["num_steps"] = arguments.steps
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{config['run']}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return config


def prepare(workdir: Path, config: dict, demo_from: Path | None) -> None:
    """Remove the run's earlier outputs; copy a built demo in if asked (times kept, so the
    workflow sees it as up to date)."""
    output = workdir / config["output_dir"]
    for kind in ("prior", "logs", "checkpoints"):
        shutil.rmtree(output / kind / config["run"], ignore_errors=True)
    demo = workdir / "resources/demo"
    if demo_from is not None and not demo.exists():
        shutil.copytree(demo_from, demo, symlinks=True, ignore=shutil.ignore_patterns("logs"))


def stages(config: dict) -> list[tuple[str, list[str]]]:
    """(stage, snakemake targets and options) in the order they run."""
    model = config["model_path"]
    trajectories = str(size_directory(config) / "trajectories.zarr")
    built = [f"{model}/config.yaml", f"{model}/best.safetensors", config["dataset"]]
    if os.path.normpath(model) == str(make_demo_plan({}).model_path):
        # Every on-request target runs the demo model's sanity check: here, not in a stage.
        built.append(f"{model}/sanity.json")
    return [
        ("model", built),
        ("plan", ["-n", "evaluate", "statistics", "latent_statistics", "--quiet", "rules"]),
        ("generate", [trajectories, "--until", "generate"]),
        ("aggregate", [trajectories]),
        ("latent", ["latent_statistics"]),
        ("decode", ["statistics", "--until", "decode"]),
        ("statistics", ["statistics"]),
        ("evaluate", ["evaluate"]),
    ]


def size_directory(config: dict) -> Path:
    """<output_dir>/prior/<run>/<T>h: every output of the run's one size."""
    return Path(config["output_dir"], "prior", config["run"], f"{config['trajectory_sizes']}h")


def disk_mb(path: Path) -> float:
    """Bytes under `path` on disk (du), in MB."""
    listed = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True).stdout
    return int(listed.split()[0]) / 1024 if listed else 0.0


def data_sizes(workdir: Path, config: dict, members: int) -> dict:
    """On-disk sizes of the shards and decoded members, and what every member's physical
    fields would take in memory at once (float32, from one decoded member)."""
    import xarray as xr

    size_dir = workdir / size_directory(config)
    sizes = {"shards_disk_mb": round(disk_mb(size_dir / "shards"), 1)}
    decoded = sorted((size_dir / "decoded").glob("*/*.zarr"))
    if decoded:
        member = xr.open_zarr(decoded[0])
        fields = sum(member[name].size * 4 for name in member.data_vars)
        sizes["decoded_disk_mb"] = round(disk_mb(size_dir / "decoded"), 1)
        sizes["one_member_fields_mb"] = round(fields / 1e6, 2)
        sizes["all_members_fields_mb"] = round(fields * members / 1e6, 1)
    return sizes


def score_summary(metrics_csv: Path, leads: tuple[int, ...]) -> tuple[list[dict], list[dict]]:
    """From metrics.csv: CRPS, energy score, spread-skill and RMSE of the model and the
    climatology ensemble at `leads` (hours), and the rank histograms' flatness (mean over
    leads) with the share of truths outside the ensemble (first + last bin) / its expected
    2 / (M + 1)."""
    import pandas as pd

    table = pd.read_csv(metrics_csv)
    table["field"] = table["variable"] + table["level"].map(
        lambda level: "" if pd.isna(level) else f" {level:g}"
    )
    sources = ["model", "climatology_ensemble"]
    table = table[table["source"].isin(sources)]
    scores = table[table["metric"].isin(["crps", "energy_score", "spread_skill_ratio", "rmse"])]
    scores = scores[scores["lead_hours"].isin(leads)]
    pivot = scores.pivot_table("value", ["field", "lead_hours"], ["metric", "source"])
    rows = [
        {"field": field, "lead_hours": int(lead), **{f"{m}/{s}": row[(m, s)] for m, s in row.index}}
        for (field, lead), row in pivot.iterrows()
    ]
    bins = table[table["metric"].str.startswith("rank_histogram_bin_")].copy()
    bins["bin"] = bins["metric"].str.removeprefix("rank_histogram_bin_").astype(int)
    flat = table[table["metric"] == "rank_histogram_flatness"]
    ranks = []
    for (field, source), values in bins.groupby(["field", "source"]):
        count = values["bin"].max() + 1
        outer = values[values["bin"].isin([0, count - 1])].groupby("lead_hours")["value"].sum()
        own = flat[(flat["field"] == field) & (flat["source"] == source)]["value"]
        ranks.append({
            "field": field, "source": source, "bins": int(count),
            "flatness_mean": own.mean(), "flatness_min": own.min(), "flatness_max": own.max(),
            "outside_share": outer.mean(), "outside_over_expected": outer.mean() * count / 2,
        })  # fmt: skip
    return rows, ranks


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} MB"


def stage_table(summaries: list[dict]) -> list[str]:
    lines = [
        "| Stage | Job processes | Wall | Peak RSS per job, max (median) | Job wall, median "
        "| snakemake's own peak | Load, mean (max) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summaries:
        median = "-" if row["job_wall_s_median"] is None else f"{row['job_wall_s_median']:.1f} s"
        done, planned = row["snakemake_steps"]
        stopped = "" if row.get("complete", True) else f" (stopped: {done} of {planned} steps)"
        lines.append(
            f"| {row['stage']}{stopped} | {row['job_processes']} | {row['wall_s']:,.1f} s "
            f"| {_mb(row['job_peak_mb_max'])} ({_mb(row['job_peak_mb_median'])}) | {median} "
            f"| {_mb(row['snakemake_peak_mb'])} | {row['load_mean']} ({row['load_max']}) |"
        )
    chain = [row for row in summaries if row["stage"] != "model"]
    total = sum(row["wall_s"] for row in chain)
    lines.append(f"| **from plan on** | | **{total:,.1f} s** | | | | |")
    return lines


def score_tables(rows: list[dict], ranks: list[dict]) -> list[str]:
    pairs = ("crps", "energy_score", "spread_skill_ratio", "rmse")
    lines = [
        "| Field | Lead (h) | " + "".join(f"{name}, model / clim. ens. | " for name in pairs),
        "|---|---|" + "---|" * len(pairs),
    ]
    for row in rows:
        cells = [f"{row[f'{n}/model']:.4g} / {row[f'{n}/climatology_ensemble']:.4g}" for n in pairs]
        lines.append(f"| {row['field']} | {row['lead_hours']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| Field | Source | Bins | Flatness, mean over leads (min to max) "
        "| Truth outside the ensemble / expected |",
        "|---|---|---|---|---|",
    ]
    for rank in ranks:
        lines.append(
            f"| {rank['field']} | {rank['source']} | {rank['bins']} | {rank['flatness_mean']:.3f} "
            f"({rank['flatness_min']:.3f} to {rank['flatness_max']:.3f}) "
            f"| {rank['outside_share']:.3f} / {2 / rank['bins']:.3f} = "
            f"{rank['outside_over_expected']:.2f} |"
        )
    return lines


def data_line(sizes: dict) -> str:
    line = f"Data: shards {sizes.get('shards_disk_mb', 0):,.1f} MB on disk"
    if "decoded_disk_mb" in sizes:
        line += (
            f", decoded members {sizes['decoded_disk_mb']:,.1f} MB on disk; in memory (float32)"
            f" one member's physical fields take {sizes['one_member_fields_mb']:,.2f} MB,"
            f" all members' {sizes['all_members_fields_mb']:,.1f} MB"
        )
    return line + "."


def write_report(workdir: Path, config: dict, report: dict) -> Path:
    """<workdir>/<run>.json (every number) and <run>.md (the tables)."""
    (workdir / f"{config['run']}.json").write_text(json.dumps(report, indent=1, default=str))
    settings = report["settings"]
    lines = [
        f"# {config['run']}: {settings['dates']} dates x {settings['members']} members, "
        f"T = {settings['size']}",
        "",
        f"{report['finished']}, {report['machine']}; {settings['sampler']}, "
        f"{settings['steps']} steps, {settings['precision']}, `--cores {settings['cores']}`, "
        f"{settings['job_threads']} thread(s) per generation job. Start dates: "
        f"{', '.join(config['start_dates'])}.",
        "",
        *stage_table(list(report["stages"].values())),
        "",
        data_line(report.get("data", {})),
    ]
    if report.get("scores"):
        lines += ["", "Scores (metrics.csv):", "", *score_tables(*report["scores"])]
    path = workdir / f"{config['run']}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def arguments_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dates", type=int, default=4)
    parser.add_argument("--members", type=int, default=64, help="members per start date")
    parser.add_argument("--size", type=int, default=72, help="trajectory size T (states)")
    parser.add_argument("--steps", type=int, default=None, help="default: the config's")
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    parser.add_argument("--job-threads", type=int, default=1, help="threads per generation job")
    parser.add_argument("--workdir", type=Path, default=OUTPUT / "scale")
    parser.add_argument(
        "--config",
        type=Path,
        default=REPO / "config/config.yaml",
        help="the config the scale run's ensemble replaces (default: config/config.yaml)",
    )
    parser.add_argument("--demo-from", type=Path, default=None, help="a built resources/demo")
    parser.add_argument(
        "--from-stage", default="model", choices=[name for name, _ in stages(_EXAMPLE)],
        help="continue an earlier run of the same ensemble from this stage (its outputs kept)",
    )  # fmt: skip
    parser.add_argument("--leads", type=int, nargs="+", default=[6, 24, 48, 71])
    return parser


# Stage names only need a config's shape.
_EXAMPLE = {"model_path": "", "trajectory_sizes": "", "output_dir": "", "run": "", "dataset": ""}


def main() -> None:
    arguments = arguments_parser().parse_args()
    workdir = arguments.workdir.resolve()
    config = write_config(workdir, arguments)
    names = [name for name, _ in stages(config)]
    continuing = names.index(arguments.from_stage) > names.index("plan")
    earlier = workdir / f"{config['run']}.json"
    report = json.loads(earlier.read_text()) if continuing and earlier.is_file() else {"stages": {}}
    if not continuing:
        prepare(workdir, config, arguments.demo_from)
    report["settings"] = {
        **{key: getattr(arguments, key) for key in SETTINGS},
        "steps": config["diffusion"]["num_steps"],
        "sampler": config["diffusion"]["sampler"]["type"],
        "precision": config["precision"],
    }  # fmt: skip
    base = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(workdir / f"{config['run']}.yaml"),
            "--cores", str(arguments.cores)]  # fmt: skip
    try:
        for name, targets in stages(config)[names.index(arguments.from_stage) :]:
            log = workdir / "logs" / config["run"] / f"{name}.log"
            stage = run_stage(name, [*base, *targets], workdir, log)
            report["stages"][name] = stage.summary()
            if stage.returncode != 0:
                raise SystemExit(f"stage {name} stopped ({stage.returncode}); see {log}")
    finally:
        members = arguments.dates * arguments.members
        report.update(finished=f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC", machine=machine())
        report["data"] = data_sizes(workdir, config, members)
        metrics = workdir / size_directory(config) / "evaluation/metrics.csv"
        if metrics.is_file():
            report["scores"] = score_summary(metrics, tuple(arguments.leads))
        print(f"report: {write_report(workdir, config, report)}")


if __name__ == "__main__":
    main()

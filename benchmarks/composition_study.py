"""What each composition rule costs a perfect model of the demo's weather, computed exactly.

    python benchmarks/composition_study.py [--dataset PATH] [--sizes 72,168,480,2160]
        [--samplers ddpm:256,lms:256] [--sweep] [--output CSV]

For every variable of the dataset (its 500 hPa geopotential and winds), the autocorrelation of
its hourly states (all grid points) is taken from the held-out period where that is longer than
the padded trajectory, else from the whole dataset (T = 2160 is longer than the demo's
held-out period). A stationary Gaussian process with that autocorrelation is then sampled
exactly (`skyquilt.scoring.gaussian.composition_penalty`) as single blankets and as composed
trajectories of each rule, with the demo model's blankets (K = 48, O = 24) and schedule:
composed / single std and hourly change, the lag correlations at 24, 48 and 96 hours against
the truth's (printed in a second table), and the states scored per step relative to symmetric
blankets.

The main table has every rule at every size and sampler; `--sweep` adds two-scale variants
(spread, block length, coarse window, the noise level below which the correction stops) at
T = 480 with the first sampler. Rows go to the CSV (default benchmarks/output/
composition_study.csv) and, as a markdown table, to stdout; docs/composition.md quotes them.
"""

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

from skyquilt.diffusion.schedules import build_schedule
from skyquilt.sampling.blankets import padded_size
from skyquilt.scoring.gaussian import Rule, autocorrelation, composition_penalty

REPO = Path(__file__).resolve().parent.parent
BLANKET_SIZE, OVERLAP = 48, 24
SCHEDULE = build_schedule("rectified", 1e-3, 1e3)
LAGS = (24, 48, 96)
SHORT_NAMES = {
    "geopotential": "z",
    "u_component_of_wind": "u",
    "v_component_of_wind": "v",
}
MAIN_RULES = (
    Rule(stitch="symmetric"),
    Rule(stitch="average"),
    Rule("factor_graph"),
    Rule("two_scale"),
)
SWEEP_RULES = (
    Rule("two_scale", spread="constant"),
    Rule("two_scale", spread="conditional"),
    Rule("two_scale", block=4, coarse_blanket=96, coarse_overlap=48),
    Rule("two_scale", block=24, coarse_blanket=16, coarse_overlap=8),
    Rule("two_scale", coarse_blanket=24, coarse_overlap=12),
    Rule("two_scale", coarse_blanket=12, coarse_overlap=6),
    Rule("two_scale", coarse_blanket=96, coarse_overlap=48),
    Rule("two_scale", until_sigma=0.0),
    Rule("two_scale", until_sigma=1.0),
    Rule("two_scale", until_sigma=3.0),
    Rule("two_scale", until_sigma=10.0),
)
COLUMNS = (
    "rule", "variable", "T", "sampler", "steps", "std_ratio", "hourly_change_ratio",
    *(f"r{lag}" for lag in LAGS), *(f"truth_r{lag}" for lag in LAGS), "work", "truth_period",
)  # fmt: skip


def correlations(dataset_path: Path, lags: int) -> tuple[dict[str, np.ndarray], str]:
    """Each variable's autocorrelation (lags,) and the period it was taken from."""
    dataset = xr.open_zarr(dataset_path)
    held = dataset.sel(time=slice(dataset.attrs["held_out_start"], dataset.attrs["held_out_end"]))
    source, period = (held, "held-out") if held.sizes["time"] > lags else (dataset, "whole")
    found = {}
    for name, values in source.data_vars.items():
        if "time" not in values.dims:
            continue
        series = values.isel(level=0) if "level" in values.dims else values
        found[SHORT_NAMES.get(str(name), str(name))] = autocorrelation(series.values, lags)
    return found, period


def study_rows(
    dataset_path: Path,
    sizes: list[int],
    samplers: list[tuple[str, int]],
    rules: tuple[Rule, ...],
    writer: csv.DictWriter,
) -> list[dict]:
    """One row (COLUMNS) per rule, variable, size and sampler, each also written at once."""
    rows = []
    for size in sizes:
        padded = padded_size(size, BLANKET_SIZE, OVERLAP)
        variables, period = correlations(dataset_path, max(padded, max(LAGS) + 1))
        for sampler, steps in samplers:
            for rule in rules:
                for variable, correlation in variables.items():
                    began = time.perf_counter()
                    penalty = composition_penalty(
                        correlation, size, BLANKET_SIZE, OVERLAP, SCHEDULE, steps,
                        sampler=sampler, rule=rule, lags=LAGS,
                    )  # fmt: skip
                    row = {
                        "rule": rule.label, "variable": variable, "T": size,
                        "sampler": sampler, "steps": steps,
                        "std_ratio": penalty.std_ratio,
                        "hourly_change_ratio": penalty.hourly_change_ratio,
                        "work": penalty.work, "truth_period": period,
                    }  # fmt: skip
                    for lag in LAGS:  # nan where the lag reaches beyond T
                        composed, _ = penalty.lags.get(lag, (float("nan"), None))
                        row |= {f"r{lag}": composed, f"truth_r{lag}": float(correlation[lag])}
                    rows.append(row)
                    writer.writerow(row)
                    print(
                        f"{rule.label:40s} {variable} T={size:5d} {sampler} {steps}: std "
                        f"{row['std_ratio']:.3f} change {row['hourly_change_ratio']:.3f} "
                        f"r96 {row['r96']:.2f}/{row['truth_r96']:.2f} work {row['work']:.2f} "
                        f"({time.perf_counter() - began:.0f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
    return rows


def parsed(row: dict) -> dict:
    """A row read back from the CSV: numbers as numbers."""
    text = ("rule", "variable", "sampler", "truth_period")
    return {key: value if key in text else float(value) for key, value in row.items()}


def truth_markdown(rows: list[dict]) -> str:
    """The truth's lag correlations per size (their period), z / u / v in each cell."""
    lines = ["| T | period | r(24 h) | r(48 h) | r(96 h) |", "|---|---|---|---|---|"]
    seen = {}
    for row in rows:
        seen.setdefault((row["T"], row["truth_period"]), {})[row["variable"]] = row
    for (size, period), by_variable in seen.items():
        cells = [
            " / ".join(f"{row[f'truth_r{lag}']:.2f}" for row in by_variable.values())
            for lag in LAGS
        ]
        lines.append(f"| {int(size)} | {period} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    """The rows as a markdown table, z / u / v in each cell."""
    groups: dict[tuple, dict[str, dict]] = {}
    for row in rows:
        key = (row["rule"], row["T"], row["sampler"], row["steps"])
        groups.setdefault(key, {})[row["variable"]] = row

    def cell(by_variable: dict[str, dict], column: str, digits: int) -> str:
        values = [by_variable[name][column] for name in by_variable]
        return " / ".join("-" if np.isnan(value) else f"{value:.{digits}f}" for value in values)

    lines = [
        "| rule | T | sampler | std | hourly change | r(24 h) | r(48 h) | r(96 h) | work |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (rule, size, sampler, steps), by_variable in groups.items():
        first = next(iter(by_variable.values()))
        lines.append(
            f"| {rule} | {int(size)} | {sampler} {int(steps)} | "
            f"{cell(by_variable, 'std_ratio', 3)} | "
            f"{cell(by_variable, 'hourly_change_ratio', 3)} | {cell(by_variable, 'r24', 2)} | "
            f"{cell(by_variable, 'r48', 2)} | {cell(by_variable, 'r96', 2)} | "
            f"{first['work']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--dataset", type=Path, default=REPO / "resources/demo/era5_demo.zarr")
    arguments.add_argument("--sizes", default="72,168,480,2160")
    arguments.add_argument("--samplers", default="ddpm:256,lms:256")
    arguments.add_argument("--sweep", action="store_true", help="two-scale variants at T = 480")
    arguments.add_argument(
        "--rules", default=None, help="main rules to run, e.g. symmetric,two_scale (default: all)"
    )
    arguments.add_argument(
        "--table", type=Path, nargs="+", default=None, help="only print the tables of these CSVs"
    )
    arguments.add_argument("--main", action=argparse.BooleanOptionalAction, default=True)
    arguments.add_argument(
        "--output", type=Path, default=REPO / "benchmarks/output/composition_study.csv"
    )
    arguments = arguments.parse_args()
    if arguments.table:
        rows = [parsed(row) for path in arguments.table for row in csv.DictReader(open(path))]
        print(f"{markdown(rows)}\n\n{truth_markdown(rows)}")
        return
    sizes = [int(size) for size in arguments.sizes.split(",")]
    chosen = arguments.rules.split(",") if arguments.rules else None
    main_rules = tuple(
        rule for rule in MAIN_RULES if chosen is None or rule.label.split()[0] in chosen
    )
    samplers = [
        (name, int(steps))
        for name, steps in (item.split(":") for item in arguments.samplers.split(","))
    ]
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(arguments.output, "w", newline="", buffering=1) as stream:
        writer = csv.DictWriter(stream, COLUMNS)
        writer.writeheader()
        if arguments.main:
            rows += study_rows(arguments.dataset, sizes, samplers, main_rules, writer)
        if arguments.sweep:
            sweep = MAIN_RULES[-1:] + SWEEP_RULES
            rows += study_rows(arguments.dataset, [480], samplers[:1], sweep, writer)
    print(f"{markdown(rows)}\n\n{truth_markdown(rows)}")


if __name__ == "__main__":
    main()

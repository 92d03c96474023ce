"""How much of the trained model's own spread composed trajectories keep, with standard errors.

    python benchmarks/composition_dispersion.py [--model-path DIR] [--dataset ZARR]
        [--cases 480:two_scale:16,72:blankets:32,72:two_scale:32] [--threads 2] [--quick]

The climate diagnostics of the evaluate rule judge 8 decoded members against the held-out
period, and 8 members resolve a std ratio to a few hundredths only. Here each case (T,
composition, members) samples its members like the demo's sanity check (start times spread
over the held-out period, `ddpm` 256 steps, K = 48, O = 24), decodes them and reports, per
variable, the evaluate rule's std, hourly-change and seam ratios, and the std ratio member by
member (each member's latitude-weighted rms about the truth's mean over the truth's std),
whose mean and standard error say how well the ratio is known. A long composed trajectory
keeps the slow weather when its std ratio matches the short trajectories' (T = 72, two
blankets) within the errors: what both miss is the blanket denoiser's own spread, not the
composition's. Rows go to benchmarks/output/composition_dispersion.csv; docs/composition.md
quotes them.
"""

import argparse
import csv
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from common import DEMO_MODEL, OUTPUT, REPO

from skyquilt.demo.sanity import Trajectories, decoded_trajectories
from skyquilt.models.config import ModelConfig, ModelDirectory
from skyquilt.models.decoder import Decoder, load_decoder
from skyquilt.models.weights import load_denoiser
from skyquilt.planning.demo_settings import held_out_mask
from skyquilt.sampling.composition import CoarseScale
from skyquilt.sampling.generation import coarse_scale
from skyquilt.scoring.climate import climate_diagnostics
from skyquilt.scoring.metrics import seam_pairs
from skyquilt.scoring.probabilistic import latitude_weights

OVERLAP, SAMPLER, STEPS = 24, "ddpm", 256
METRICS = ("std_ratio", "hourly_change_ratio", "seam_ratio")
COLUMNS = ("T", "composition", "members", "variable", *METRICS, "member_mean", "member_se")


def member_std_ratios(forecast: xr.DataArray, truth: xr.DataArray) -> np.ndarray:
    """(members,) each member's latitude-weighted rms about the truth's mean / the truth's std."""
    weights = latitude_weights(truth.latitude)
    mean = float((truth * weights).mean())
    std = float(np.sqrt(((truth - mean) ** 2 * weights).mean()))
    within = [dim for dim in forecast.dims if dim != "member"]
    return np.sqrt(((forecast - mean) ** 2 * weights).mean(within)).values / std


@dataclass(frozen=True)
class Demo:
    """What every case samples with: the model at --model-path, its coarse scale (None when no
    case composes two_scale), its decoder, and the dataset's times, held-out mask and truth."""

    directory: ModelDirectory
    denoiser: torch.nn.Module
    model: ModelConfig
    coarse: CoarseScale | None
    decoder: Decoder
    times: np.ndarray
    held: np.ndarray
    truth: xr.Dataset

    @classmethod
    def load(cls, model_dir: Path, dataset_path: Path, two_scale: bool) -> "Demo":
        denoiser, model = load_denoiser(model_dir, "best")
        coarse = coarse_scale(model_dir, model) if two_scale else None
        directory = ModelDirectory(model_dir)
        decoder = load_decoder(directory.autoencoder_dir)
        dataset = xr.open_zarr(dataset_path)
        period = (dataset.attrs["held_out_start"], dataset.attrs["held_out_end"])
        held = held_out_mask(dataset.time.values, period)
        truth = dataset.isel(time=held)[list(decoder.variables)].load()
        return cls(directory, denoiser, model, coarse, decoder, dataset.time.values, held, truth)


def case_rows(demo: Demo, size: int, composition: str, members: int) -> list[dict]:
    """One row (COLUMNS) per variable of `members` decoded trajectories of `size` states."""
    sampling = Trajectories(members, size, OVERLAP, SAMPLER, STEPS, composition=composition)
    coarse = demo.coarse if composition == "two_scale" else None
    forecast = decoded_trajectories(
        demo.denoiser, demo.model, demo.decoder, demo.directory.stats_file, demo.times, demo.held,
        demo.truth, sampling, coarse,
    )  # fmt: skip
    truth, decoder, model = demo.truth, demo.decoder, demo.model
    table = climate_diagnostics(forecast, truth, seam_pairs(size, model.blanket_size, OVERLAP))
    rows = []
    for variable in decoder.variables:
        ratios = member_std_ratios(forecast[variable], truth[variable])
        judged = table[(table.variable == variable) & table.metric.isin(METRICS)]
        rows.append(
            {"T": size, "composition": composition, "members": members, "variable": variable}
            | {row.metric: float(row.ratio) for row in judged.itertuples()}
            | {
                "member_mean": float(np.sqrt((ratios**2).mean())),
                "member_se": float(ratios.std(ddof=1) / np.sqrt(len(ratios))),
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    """The rows as a markdown table, z / u / v in each cell."""
    cases: dict[tuple, list[dict]] = {}
    for row in rows:
        cases.setdefault((row["T"], row["composition"], row["members"]), []).append(row)

    def cell(group: list[dict], column: str) -> str:
        return " / ".join(f"{row[column]:.3f}" for row in group)

    lines = [
        "| T | composition | members | std ratio (+- se) | hourly change | seams |",
        "|---|---|---|---|---|---|",
    ]
    for (size, composition, members), group in cases.items():
        spread = " / ".join(f"{row['std_ratio']:.3f} +- {row['member_se']:.3f}" for row in group)
        lines.append(
            f"| {size} | {composition} | {members} | {spread} | "
            f"{cell(group, 'hourly_change_ratio')} | {cell(group, 'seam_ratio')} |"
        )
    return "\n".join(lines)


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument(
        "--model-path", type=Path, default=DEMO_MODEL, help="default: the demo model (make demo)"
    )
    arguments.add_argument("--dataset", type=Path, default=REPO / "resources/demo/era5_demo.zarr")
    arguments.add_argument(
        "--cases",
        default="480:two_scale:16,72:blankets:32,72:two_scale:32",
        help="T:composition:members, comma separated",
    )
    arguments.add_argument("--threads", type=int, default=1, help="torch threads")
    arguments.add_argument("--quick", action="store_true", help="one tiny case, for smoke tests")
    arguments.add_argument("--output", type=Path, default=OUTPUT / "composition_dispersion.csv")
    arguments = arguments.parse_args()
    for path in (arguments.model_path / "config.yaml", arguments.dataset):
        if not path.exists():
            sys.exit(f"composition_dispersion: {path} does not exist; run make demo first")
    torch.set_num_threads(arguments.threads)
    cases = [case.split(":") for case in arguments.cases.split(",")]
    if arguments.quick:
        cases = [["72", "two_scale", "2"]]
    two_scale = any(composition == "two_scale" for _, composition, _ in cases)
    demo = Demo.load(arguments.model_path, arguments.dataset, two_scale)
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(arguments.output, "w", newline="") as file:
        writer = csv.DictWriter(file, COLUMNS)
        writer.writeheader()
        for size, composition, members in cases:
            began = time.perf_counter()
            found = case_rows(demo, int(size), composition, int(members))
            writer.writerows(found)
            rows += found
            print(
                f"{size}:{composition}:{members}: {time.perf_counter() - began:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    print(markdown(rows))


if __name__ == "__main__":
    main()

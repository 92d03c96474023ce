"""Plots of scores: metrics against lead time, zonal power spectra, blanket-seam continuity,
rank histograms."""

import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from skyquilt.plotting.figures import new_figure, save_figure

SOURCE_STYLES = {
    "model": {"color": "tab:blue", "marker": "o"},
    "persistence": {"color": "tab:orange", "marker": "s"},
    "climatology": {"color": "tab:green", "marker": "^"},
    "climatology_ensemble": {"color": "tab:olive", "marker": "v"},
    "truth": {"color": "black", "marker": None},
}
METRIC_LABELS = {
    "rmse": "ensemble-mean RMSE",
    "spread": "spread",
    "spread_skill_ratio": "spread-skill ratio",
    "crps": "fair CRPS",
    "energy_score": "energy score",
    "rank_histogram_flatness": "rank-histogram flatness",
}
UNITLESS = ("spread_skill_ratio", "rank_histogram_flatness")
RANK_BIN = "rank_histogram_bin_"


def panels_of(table: pd.DataFrame) -> list[tuple[str, object]]:
    """(variable, level) pairs of a tidy table, in order of appearance; level may be <NA>."""
    pairs = table[["variable", "level"]].drop_duplicates()
    return list(pairs.itertuples(index=False, name=None))


def rows_of(table: pd.DataFrame, variable: str, level: object) -> pd.DataFrame:
    """The rows of one (variable, level) of a tidy table; level may be <NA>."""
    same_level = table["level"].isna() if pd.isna(level) else table["level"] == level
    return table[(table["variable"] == variable) & same_level.fillna(False)]


def panel_title(variable: str, level: object) -> str:
    """'geopotential 500 hPa', or the variable alone."""
    return variable.replace("_", " ") + ("" if pd.isna(level) else f" {int(level)} hPa")


def plot_scores(
    scores: pd.DataFrame,
    path: str | os.PathLike,
    units: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Each score vs lead time: one row per (variable, level), one column per metric.

    One line per source (model, persistence, climatology). `scores` has metrics.SCORE_COLUMNS;
    rows without a lead time (seam ratios) are ignored. `units` maps variable -> units;
    `notes` (a left-out baseline, say) are printed below the panels.
    """
    scores = scores[scores["metric"].isin(METRIC_LABELS) & scores["lead_hours"].notna()]
    metrics = [metric for metric in METRIC_LABELS if metric in set(scores["metric"])]
    panels = panels_of(scores)
    figure, axes = new_figure(
        len(panels), len(metrics), figsize=(3.6 * len(metrics), 2.6 * len(panels) + 0.6)
    )
    for row, (variable, level) in enumerate(panels):
        rows = rows_of(scores, variable, level)
        unit = (units or {}).get(variable, "")
        for column, metric in enumerate(metrics):
            ax = axes[row, column]
            for source, lines in rows[rows["metric"] == metric].groupby("source", sort=False):
                lines = lines.sort_values("lead_hours")
                ax.plot(
                    lines["lead_hours"],
                    lines["value"],
                    label=source,
                    markersize=3,
                    **SOURCE_STYLES.get(source, {}),
                )
            if metric == "spread_skill_ratio":
                ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
            label = METRIC_LABELS[metric]
            ax.set_ylabel(label if metric in UNITLESS or not unit else f"{label} [{unit}]")
            ax.set_title(f"{panel_title(variable, level)}\n{label}", fontsize=9)
            ax.grid(alpha=0.3)
            if row == len(panels) - 1:
                ax.set_xlabel("lead time [h]")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside upper right", ncols=len(labels))
    title = "Scores of the unconditional ensemble vs ground truth (latitude-weighted)"
    lines = [textwrap.fill(note, 40 * len(metrics)) for note in notes]
    figure.suptitle("\n".join([title, *lines]))
    return save_figure(figure, path)


def plot_spectra(
    spectra: pd.DataFrame, path: str | os.PathLike, units: Mapping[str, str] | None = None
) -> Path:
    """Zonal power spectra, samples vs truth, log-log, one panel per (variable, level).

    `spectra` has metrics.SPECTRUM_COLUMNS; wavenumber 0 (the zonal mean) is left out.
    `units` maps variable -> units.
    """
    spectra = spectra[spectra["wavenumber"] > 0]
    panels = panels_of(spectra)
    columns = min(len(panels), 3)
    grid_rows = -(-len(panels) // columns)
    figure, axes = new_figure(grid_rows, columns, figsize=(4.0 * columns, 3.0 * grid_rows + 0.5))
    for ax, (variable, level) in zip(axes.flat, panels, strict=False):
        rows = rows_of(spectra, variable, level)
        for source, lines in rows.groupby("source", sort=False):
            lines = lines.sort_values("wavenumber")
            style = SOURCE_STYLES.get(source, {})
            ax.loglog(lines["wavenumber"], lines["value"], label=source, color=style.get("color"))
        ax.set_title(panel_title(variable, level), fontsize=9)
        unit = (units or {}).get(variable)
        ax.set_xlabel("zonal wavenumber")
        ax.set_ylabel(f"power [({unit})^2]" if unit else "power")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle("Zonal power spectra: unconditional samples vs ground truth")
    return save_figure(figure, path)


def plot_seams(
    steps: pd.DataFrame, seams: Sequence[int], ratios: pd.DataFrame, path: str | os.PathLike
) -> Path:
    """Mean |x_{t+1} - x_t| against t for samples and truth, blanket seams as dotted lines.

    The seam-continuity ratio is in each title. `steps` has metrics.STEP_COLUMNS, `ratios` the
    seam_ratio rows of metrics.seam_table.
    """
    panels = panels_of(steps)
    columns = min(len(panels), 3)
    grid_rows = -(-len(panels) // columns)
    figure, axes = new_figure(grid_rows, columns, figsize=(4.4 * columns, 3.0 * grid_rows + 0.5))
    for ax, (variable, level) in zip(axes.flat, panels, strict=False):
        for seam in seams:
            ax.axvline(seam + 0.5, color="grey", linestyle=":", linewidth=1)
        rows = rows_of(steps, variable, level)
        for source, lines in rows.groupby("source", sort=False):
            lines = lines.sort_values("step")
            style = SOURCE_STYLES.get(source, {})
            ax.plot(lines["step"] + 0.5, lines["value"], label=source, color=style.get("color"))
        ratio = rows_of(ratios, variable, level).set_index("source")["value"]
        shown = ", ".join(f"{source} {value:.2f}" for source, value in ratio.items())
        ax.set_title(f"{panel_title(variable, level)}\nseam ratio: {shown}", fontsize=9)
        ax.set_xlabel("state index t (pair t, t+1)")
        ax.set_ylabel("mean |x(t+1) - x(t)|")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle("Blanket-seam continuity (dotted: seams; ratio 1.0 = no visible seam)")
    return save_figure(figure, path)


def plot_rank_histograms(scores: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Rank histograms averaged over lead times, one panel per (variable, level).

    Bars per ensemble source (model, climatology_ensemble) side by side; the dotted line is the
    flat histogram 1 / (M + 1) and each source's flatness (averaged over leads) is in the title.
    `scores` has metrics.SCORE_COLUMNS with rank_histogram_bin_<k> rows.
    """
    bins = scores[scores["metric"].str.startswith(RANK_BIN)].copy()
    bins["rank"] = bins["metric"].str.removeprefix(RANK_BIN).astype(int)
    flat = scores[scores["metric"] == "rank_histogram_flatness"]
    panels = panels_of(bins)
    columns = max(1, min(len(panels), 3))
    grid_rows = max(1, -(-len(panels) // columns))
    figure, axes = new_figure(grid_rows, columns, figsize=(4.4 * columns, 3.0 * grid_rows + 0.5))
    for ax, (variable, level) in zip(axes.flat, panels, strict=False):
        rows = rows_of(bins, variable, level)
        sources = list(dict.fromkeys(rows["source"]))
        width = 0.8 / max(1, len(sources))
        for index, source in enumerate(sources):
            mean = rows[rows["source"] == source].groupby("rank")["value"].mean()
            style = SOURCE_STYLES.get(source, {})
            ax.bar(
                mean.index + (index - (len(sources) - 1) / 2) * width,
                mean.values,
                width,
                label=source,
                color=style.get("color"),
            )
            ax.axhline(1.0 / len(mean), color="grey", linestyle=":", linewidth=1)
        flatness = rows_of(flat, variable, level).groupby("source", sort=False)["value"].mean()
        shown = ", ".join(f"{source} {value:.2f}" for source, value in flatness.items())
        ax.set_title(f"{panel_title(variable, level)}\nflatness: {shown}", fontsize=9)
        ax.set_xticks(range(int(rows["rank"].max()) + 1))  # ranks are whole numbers
        ax.set_xlabel("rank of the truth among the members")
        ax.set_ylabel("frequency (latitude-weighted)")
        ax.grid(alpha=0.3, axis="y")
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    # One legend for the figure, outside the panels: inside, it would hide the highest bars.
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside upper right", ncols=max(1, len(labels)))
    figure.suptitle("Rank histograms over all lead times (dotted: flat = reliable)")
    return save_figure(figure, path)

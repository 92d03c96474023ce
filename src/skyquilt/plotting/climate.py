"""Plots of the climate diagnostics and of the composition-fidelity check, with target bands."""

import os
from pathlib import Path

import numpy as np
import pandas as pd

from skyquilt.plotting.figures import new_figure, save_figure
from skyquilt.plotting.scores import panel_title, panels_of, rows_of
from skyquilt.scoring.climate import FIDELITY_TARGETS, TARGETS

RATIO_METRICS = ("std_ratio", "hourly_change_ratio", "seam_ratio")
BAND = {"color": "tab:green", "alpha": 0.15}


def _ratio_panel(ax, rows: pd.DataFrame, metrics: tuple[str, ...], targets: dict) -> None:
    """One marker per metric at its ratio, its target band shaded behind it."""
    for index, metric in enumerate(metrics):
        low, high = targets[metric]
        ax.fill_between([index - 0.4, index + 0.4], low, high, **BAND)
        value = rows.loc[rows["metric"] == metric, "ratio"]
        if len(value) and np.isfinite(value.iloc[0]):
            ax.plot(index, value.iloc[0], "o", color="tab:blue")
            ax.annotate(
                f"{value.iloc[0]:.2f}",
                (index, value.iloc[0]),
                xytext=(6, 0),
                textcoords="offset points",
                fontsize=8,
            )
    ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(range(len(metrics)), [metric.removesuffix("_ratio") for metric in metrics])
    ax.set_xlim(-0.6, len(metrics) - 0.4)
    ax.grid(alpha=0.3, axis="y")


def _spectrum_panel(ax, rows: pd.DataFrame) -> None:
    """Spectrum ratio against wavenumber (k >= 1), log-log, the factor-2 band shaded; judged
    wavenumbers (truth holding >= 1 % of its peak power) filled."""
    rows = rows[(rows["metric"] == "spectrum_ratio") & (rows["wavenumber"] >= 1)]
    rows = rows.sort_values("wavenumber")
    low, high = TARGETS["spectrum_ratio"]
    ax.axhspan(low, high, **BAND)
    ax.loglog(rows["wavenumber"], rows["ratio"], color="tab:blue", linewidth=1)
    judged = rows[rows["judged"].astype(bool)]
    ax.loglog(judged["wavenumber"], judged["ratio"], "o", color="tab:blue", markersize=3)
    ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("zonal wavenumber")
    ax.set_ylabel("power ratio model / truth")
    ax.grid(alpha=0.3, which="both")


def plot_climate(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Climate ratios per (variable, level): std, hourly change and seam ratios against their
    target bands (left), the spectrum ratio against wavenumber (right).

    `table` has skyquilt.scoring.climate.CLIMATE_COLUMNS.
    """
    panels = panels_of(table)
    figure, axes = new_figure(len(panels), 2, figsize=(9.0, 2.8 * len(panels) + 0.6))
    for row, (variable, level) in enumerate(panels):
        rows = rows_of(table, variable, level)
        _ratio_panel(axes[row, 0], rows, RATIO_METRICS, TARGETS)
        axes[row, 0].set_ylabel("ratio")
        axes[row, 0].set_title(f"{panel_title(variable, level)}: model / truth", fontsize=9)
        _spectrum_panel(axes[row, 1], rows)
        axes[row, 1].set_title(f"{panel_title(variable, level)}: zonal spectrum", fontsize=9)
    figure.suptitle("Climate diagnostics (shaded: target bands; seam: across / inside blankets)")
    return save_figure(figure, path)


def plot_fidelity(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Composed / single-blanket ratios of the std and hourly-change ratios, one panel per
    (variable, level), target bands shaded. `table` has climate.FIDELITY_COLUMNS."""
    panels = panels_of(table)
    columns = min(len(panels), 3)
    grid_rows = -(-len(panels) // columns)
    figure, axes = new_figure(grid_rows, columns, figsize=(3.6 * columns, 2.8 * grid_rows + 0.6))
    metrics = tuple(FIDELITY_TARGETS)
    for ax, (variable, level) in zip(axes.flat, panels, strict=False):
        _ratio_panel(ax, rows_of(table, variable, level), metrics, FIDELITY_TARGETS)
        ax.set_ylabel("composed / single")
        ax.set_title(panel_title(variable, level), fontsize=9)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle("Composition fidelity: composed trajectories vs single blankets")
    return save_figure(figure, path)

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
    """One marker per metric at its ratio, its target band shaded behind it.

    The y axis spans the ratios and the bands' edges, but not a band's lower edge of 0 (a
    target "at most h"), which would squeeze every ratio near 1 into a few pixels.
    """
    shown = [1.0]
    for index, metric in enumerate(metrics):
        low, high = targets[metric]
        ax.fill_between([index - 0.4, index + 0.4], low, high, **BAND)
        shown += [edge for edge in (low, high) if edge > 0]
        value = rows.loc[rows["metric"] == metric, "ratio"]
        if len(value) and np.isfinite(value.iloc[0]):
            shown.append(value.iloc[0])
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
    margin = 0.1 * (max(shown) - min(shown))
    ax.set_ylim(min(shown) - margin, max(shown) + margin)
    ax.grid(alpha=0.3, axis="y")


def _spectrum_panel(ax, rows: pd.DataFrame) -> None:
    """The mean zonal power of the model and of the truth against wavenumber (k >= 1),
    log-log, and the target band (the truth's power times 0.5 to 2) shaded over the judged
    wavenumbers, those where the truth holds >= 1 % of its peak power (filled points).

    Power rather than the ratio model / truth: beyond the judged wavenumbers the truth has next
    to no power, and the ratio there is large without meaning anything. The y axis starts a
    decade below the model's lowest power and the band's, so that the truth's negligible power
    there, many decades down, does not squeeze the rest into a sliver: it falls below the axis.
    """
    rows = rows[(rows["metric"] == "spectrum_ratio") & (rows["wavenumber"] >= 1)]
    rows = rows.sort_values("wavenumber")
    judged = rows["judged"].astype(bool)
    low, high = TARGETS["spectrum_ratio"]
    ax.fill_between(
        rows["wavenumber"],
        low * rows["reference"],
        high * rows["reference"],
        where=judged,
        label="target (judged k)",
        **BAND,
    )
    ax.loglog(rows["wavenumber"], rows["reference"], color="black", linewidth=1, label="truth")
    ax.loglog(rows["wavenumber"], rows["model"], color="tab:blue", linewidth=1, label="model")
    ax.loglog(
        rows["wavenumber"][judged], rows["model"][judged], "o", color="tab:blue", markersize=3
    )
    powers = pd.concat([rows["model"], low * rows["reference"][judged]])
    if (powers > 0).any():
        ax.set_ylim(bottom=powers[powers > 0].min() / 10)
    ax.set_xlabel("zonal wavenumber")
    ax.set_ylabel("mean power")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)


def plot_climate(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Climate ratios per (variable, level): std, hourly change and seam ratios against their
    target bands (left), the zonal spectra of model and truth with the spectrum's target band
    over the judged wavenumbers (right).

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

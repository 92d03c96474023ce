"""Figures drawn without pyplot, and saved atomically (no half-written image is left)."""

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from skyquilt.io.atomic import atomic_file


def new_figure(rows: int, columns: int, **kwargs) -> tuple[Figure, np.ndarray]:
    """A figure drawn by the Agg canvas, with a (rows, columns) array of axes.

    Figures are made without pyplot: no global figure registry to leak into, no GUI backend.
    """
    figure = Figure(layout="constrained", **kwargs)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, columns, squeeze=False)


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """Save `figure` to `path` atomically; returns the path."""
    with atomic_file(path) as temporary:
        figure.savefig(temporary)
    return Path(path)

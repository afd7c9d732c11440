"""The shared canvas of the figures: numpy views, output folders, off-screen Agg figures.

Figures are `matplotlib.figure.Figure` objects drawn by the Agg canvas directly (pyplot is never
imported, so the process-wide matplotlib backend is left alone); matplotlib is the `plots` extra.
"""
import os

import numpy as np

from tfp_glow.extras import require


def as_numpy(x):
    """A numpy view of a tensor or array."""
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def makedirs_for(path):
    """Creates the folder `path` is written into."""
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)


def new_figure(ncols, nrows=1, size=3.6):
    """An off-screen figure of `ncols x nrows` panels of `size` inches, room for a title."""
    Figure = require("matplotlib.figure", "plots", "drawing figures (tfp_glow.plots)").Figure

    return Figure(figsize=(size * ncols, size * nrows + 0.5), dpi=100)


def save_figure(fig, path):
    """Renders `fig` with the Agg canvas into `path` (PNG by suffix); returns `path`."""
    FigureCanvasAgg = require("matplotlib.backends.backend_agg", "plots", "drawing figures").FigureCanvasAgg

    makedirs_for(path)
    FigureCanvasAgg(fig)
    fig.savefig(path)
    return path

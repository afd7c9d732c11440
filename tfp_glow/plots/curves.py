"""Training curves: a metric per epoch from a run's `metrics.csv` (or a Keras `CSVLogger` file).

The two formats differ in their epoch column: a run's `metrics.csv` counts epochs from 1, as
the console does (`Epoch 1/30`), in the column `epoch_1based` (`EPOCH_COLUMN`); Keras'
`CSVLogger`, and run directories written before that column, count from 0 in `epoch`.
`row_epoch` reads either.
"""
import csv

from tfp_glow.plots.canvas import new_figure, save_figure

EPOCH_COLUMN = "epoch_1based"  # a run's metrics.csv: 1-based, as the console counts
KERAS_EPOCH_COLUMN = "epoch"  # keras.callbacks.CSVLogger and older runs: 0-based


def row_epoch(row):
    """The 1-based epoch of a metrics row (either format), or None if it has none."""
    try:
        if row.get(EPOCH_COLUMN) not in (None, ""):
            return int(float(row[EPOCH_COLUMN]))
        return int(float(row[KERAS_EPOCH_COLUMN])) + 1
    except (KeyError, TypeError, ValueError):
        return None


def read_metrics_csv(csv_path):
    """Rows of a metrics file as `{column: [float per epoch]}`, with `"epoch"` 1-based.

    Either format (module doc): `epoch_1based` is taken as it is, Keras' 0-based `epoch` is
    returned 1-based. When an epoch appears more than once (a run resumed from an earlier
    checkpoint), its last row wins.
    """
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    by_epoch = {}
    for row in rows:
        epoch = row_epoch(row)
        if epoch is not None:
            by_epoch[epoch] = row
    epochs = sorted(by_epoch)
    columns = {"epoch": [float(e) for e in epochs]}
    keys = [k for k in (rows[0].keys() if rows else []) if k not in (EPOCH_COLUMN, KERAS_EPOCH_COLUMN)]
    for key in keys:
        vals = []
        for e in epochs:
            try:
                vals.append(float(by_epoch[e].get(key)))
            except (TypeError, ValueError):
                vals.append(float("nan"))
        columns[key] = vals
    return columns


def plot_curves(csv_path, png_path, metric="bits_per_dim", ylabel=None):
    """Training and validation `metric` per epoch from a `metrics.csv`, written as a PNG.

    Args:
      csv_path: a run's `metrics.csv` (or a Keras `CSVLogger` file) with an epoch column,
        `metric` and `val_<metric>`.
      png_path: output `.png`.
      metric: the column to plot (`bits_per_dim`, `nll` or `loss`).
      ylabel: y axis label (default: "bits/dim" for `bits_per_dim`, else the metric name).

    Returns:
      `png_path`.
    """
    cols = read_metrics_csv(csv_path)
    if not cols["epoch"] or metric not in cols:
        raise ValueError(f"{csv_path!r} has no {metric!r} values per epoch to plot.")
    fig = new_figure(1, size=5)
    ax = fig.subplots()
    ax.plot(cols["epoch"], cols[metric], marker="o", ms=3, label="training")
    if f"val_{metric}" in cols:
        ax.plot(cols["epoch"], cols[f"val_{metric}"], marker="o", ms=3, label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or ("bits/dim" if metric == "bits_per_dim" else metric))
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(f"{ax.get_ylabel()} per epoch")
    fig.tight_layout()
    return save_figure(fig, png_path)

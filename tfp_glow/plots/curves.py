"""Training curves: a metric per epoch from a Keras `CSVLogger` file."""
import csv

from tfp_glow.plots.canvas import new_figure, save_figure


def read_metrics_csv(csv_path):
    """Rows of a Keras `CSVLogger` file as `{column: [float per epoch]}`, epochs 1-based.

    The `epoch` column of Keras is 0-based; it is returned 1-based. When an epoch appears more
    than once (a run resumed from an earlier checkpoint), its last row wins.
    """
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    by_epoch = {}
    for row in rows:
        try:
            epoch = int(float(row["epoch"])) + 1
        except (KeyError, TypeError, ValueError):
            continue
        by_epoch[epoch] = row
    epochs = sorted(by_epoch)
    columns = {"epoch": [float(e) for e in epochs]}
    keys = [k for k in (rows[0].keys() if rows else []) if k != "epoch"]
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
      csv_path: a Keras `CSVLogger` file with columns `epoch`, `metric` and `val_<metric>`.
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

"""tfp_glow.plots.curves: training curves from a Keras CSVLogger file."""
import csv

import pytest

from tfp_glow import plots


def test_plot_curves_from_csv_last_row_per_epoch_wins(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    rows = [(0, 4.0, 4.1), (1, 3.5, 3.7), (1, 3.4, 3.6), (2, 3.2, 3.5)]  # epoch 1 logged twice (resume)
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "bits_per_dim", "loss", "val_bits_per_dim"])
        for e, b, v in rows:
            w.writerow([e, b, b, v])
    cols = plots.read_metrics_csv(str(csv_path))
    assert cols["epoch"] == [1.0, 2.0, 3.0]
    assert cols["bits_per_dim"] == [4.0, 3.4, 3.2]
    assert cols["val_bits_per_dim"] == [4.1, 3.6, 3.5]
    png = plots.plot_curves(str(csv_path), str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").stat().st_size > 5_000 and png.endswith("curves.png")
    with pytest.raises(ValueError, match="no 'nll'"):
        plots.plot_curves(str(csv_path), str(tmp_path / "c2.png"), metric="nll")

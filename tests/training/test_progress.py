"""The epoch line is short and shows each figure once; metrics.csv counts epochs as the console
does (from 1) and older 0-based files still read; Ctrl-C says which epoch the run keeps."""
import csv
import os
import re

import pytest

from tfp_glow import plots, runs
from tfp_glow.cli import train as train_cli
from tfp_glow.training.progress import epoch_figures, format_figures
from cli_runner import run_cli

TINY = ["--levels", "1", "--steps", "1", "--hidden", "4", "--no-xla", "--n-samples", "4", "--steps-per-epoch", "3"]
# what a FlowModel logs on images (values from a real run of `tfp-glow train`)
LOGS = {"bits_per_dim": 5.4062, "grad_norm": 0.5803, "loss": 5.4062, "nll": 239.8269, "nonfinite_steps": 0.0,
        "val_bits_per_dim": 5.1077, "val_loss": 5.1077, "val_nll": 226.5852}


def test_each_figure_once_and_counts_as_integers():
    assert format_figures(LOGS) == ("bits_per_dim: 5.4062 - val_bits_per_dim: 5.1077 - grad_norm: 0.5803 - "
                                    "nonfinite_steps: 0")
    # vectors log no bits/dim: nll is the figure, loss (equal to it) is dropped
    vec = {"grad_norm": 1.0, "loss": 2.5, "nll": 2.5, "nonfinite_steps": 3.0, "val_loss": 2.25, "val_nll": 2.25}
    assert [k for k, _ in epoch_figures(vec)] == ["nll", "val_nll", "grad_norm", "nonfinite_steps"]
    assert "nonfinite_steps: 3" in format_figures(vec)
    # a loss that is not one of the figures (e.g. with a regulariser) is kept
    assert "loss" in dict(epoch_figures({**LOGS, "loss": 6.0}))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("runs") / "glow")
    rc, out, err = run_cli(["train", "--epochs", "2", *TINY, "--verbose", "2", "--run-dir", run_dir])
    assert rc == 0, out + err
    return run_dir, out


def test_the_default_epoch_line_is_short(trained):
    _, out = trained
    lines = [line for line in out.splitlines() if re.match(r"\d+/\d+ - \d+s - ", line)]
    assert len(lines) == 2, out
    for line in lines:
        assert len(line) <= 120, line
        assert " loss:" not in line and "nll" not in line and "e+00" not in line, line
        assert re.search(r"bits_per_dim: \d\.\d{4} - val_bits_per_dim: \d\.\d{4} - grad_norm: \S+ - "
                         r"nonfinite_steps: 0$", line), line
    assert "Epoch 1/2" in out and "Epoch 2/2" in out


def test_metrics_csv_counts_epochs_as_the_console(trained):
    run_dir, out = trained
    with open(os.path.join(run_dir, runs.METRICS), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch_1based"] for r in rows] == ["1", "2"]
    # the console's figures of epoch 2 are the file's row "2"
    last = [line for line in out.splitlines() if line.startswith("3/3 - ")][-1]
    shown = float(re.search(r" bits_per_dim: (\d\.\d{4})", last).group(1))
    assert shown == pytest.approx(float(rows[1]["bits_per_dim"]), abs=1e-4)
    assert plots.read_metrics_csv(os.path.join(run_dir, runs.METRICS))["epoch"] == [1.0, 2.0]


def _old_file(path, epochs):
    """A metrics.csv as runs wrote it before: Keras' 0-based `epoch`."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "bits_per_dim", "loss", "val_bits_per_dim"])
        for e in epochs:
            w.writerow([e, 5.0 - e, 5.0 - e, 5.5 - e])


def test_old_zero_based_files_still_read_and_continue_in_the_new_format(tmp_path):
    path = str(tmp_path / "metrics.csv")
    _old_file(path, [0, 1, 2])
    cols = plots.read_metrics_csv(path)
    assert cols["epoch"] == [1.0, 2.0, 3.0] and cols["bits_per_dim"] == [5.0, 4.0, 3.0]
    # a resumed old run: its checkpoint completed 2 epochs, so row 3 goes, then epoch 3 is written again
    assert runs.reconcile_metrics(path, 2) == 1
    runs.append_metrics_row(path, 2, {"bits_per_dim": 2.5, "loss": 2.5, "val_bits_per_dim": 3.0})
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch_1based"] for r in rows] == ["1", "2", "3"] and "epoch" not in rows[0]
    assert [float(r["bits_per_dim"]) for r in rows] == [5.0, 4.0, 2.5]
    assert plots.read_metrics_csv(path)["epoch"] == [1.0, 2.0, 3.0]


def test_ctrl_c_says_which_epoch_the_run_keeps(trained, monkeypatch, tmp_path):
    run_dir, _ = trained
    def interrupt(self, epoch, logs=None):  # Ctrl-C as epoch 3 begins, after epoch 2's checkpoint
        raise KeyboardInterrupt()

    monkeypatch.setattr(train_cli.EpochLine, "on_epoch_begin", interrupt)
    rc, out, err = run_cli(["train", "--resume", "--epochs", "4", "--no-xla", "--run-dir", run_dir])
    assert rc == 130, out + err
    (line,) = err.strip().splitlines()
    assert "epoch 2 of 4" in line and f"tfp-glow train --resume --run-dir {run_dir}" in line, line
    # before the first epoch completed: nothing to resume, and it says so
    fresh = str(tmp_path / "fresh")
    rc, out, err = run_cli(["train", "--epochs", "1", *TINY, "--run-dir", fresh])
    assert rc == 130 and "no checkpoint to resume" in err.strip().splitlines()[-1], out + err

"""`tfp-glow train --time-limit`: stops on an epoch boundary, says so, and `--resume` goes on from there."""
import csv
import os

from cli_runner import run_cli

TINY_GLOW = ["--levels", "1", "--steps", "1", "--hidden", "8"]


def test_time_limit_stops_on_an_epoch_then_resume_finishes(tmp_path):
    run_dir = str(tmp_path / "limited")
    # The first epoch always runs (it compiles); a budget far shorter than it stops right after it.
    rc, out, err = run_cli(["train", "--epochs", "4", *TINY_GLOW, "--no-xla", "--run-dir", run_dir,
                            "--time-limit", "0.01"])
    assert rc == 0, out + err
    assert "stopped by --time-limit 0.01 after epoch 1 of 4" in out
    assert "Epoch 2/4" not in out
    assert "test bits/dim:" in out  # the run still ends as a run does: evaluated and saved
    assert os.path.isfile(os.path.join(run_dir, "checkpoints", "ckpt-1.index"))
    assert os.path.isfile(os.path.join(run_dir, "model.weights.h5"))
    rc, out, err = run_cli(["train", "--resume", "--run-dir", run_dir, "--no-xla"])
    assert rc == 0, out + err
    assert "resuming from epoch 1" in out and "Epoch 4/4" in out and "--time-limit" not in out
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        assert [row["epoch_1based"] for row in csv.DictReader(f)] == ["1", "2", "3", "4"]


def test_time_limit_is_refused_where_it_cannot_apply(tmp_path):
    rc, _, err = run_cli(["train", "--time-limit", "0", "--run-dir", str(tmp_path / "r")])
    assert rc == 2 and "--time-limit" in err
    rc, _, err = run_cli(["train", "--time-limit", "60", "--strategy", "multiworker", *TINY_GLOW,
                          "--run-dir", str(tmp_path / "r")])
    assert rc == 2 and "multiworker" in err
    assert not os.path.exists(tmp_path / "r" / "config.json")

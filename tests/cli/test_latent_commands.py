"""`tfp-glow train --conditional`, `interpolate`, `manipulate`, `score` and `sample` by class,
in-process through `cli.main` on tiny models; bad input is one `error:` line, exit 2."""
import csv
import os
import re

import numpy as np
import pytest

from tfp_glow import runs
from tfp_glow.models import FlowConfig
from tfp_glow.training import FlowModel
from tfp_glow import data as data_lib
from cli_runner import run_cli
import support

TINY = ["--levels", "2", "--steps", "1", "--hidden", "8", "--no-xla"]


def _error(argv, match):
    rc, out, err = run_cli(argv)
    assert rc == 2, out + err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.search(match, lines[0]), lines[0]


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("runs") / "glow-digits-conditional")
    rc, out, err = run_cli(["train", "--conditional", "--epochs", "1", *TINY, "--run-dir", run_dir, "--verbose", "0"])
    assert rc == 0, out + err
    return run_dir, out


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    """An unconditional run directory written through the API (initialised, not trained)."""
    run_dir = str(tmp_path_factory.mktemp("runs") / "plain")
    model = FlowModel(support.TINY_GLOW, n_bits=5)
    model.initialize(data_lib.load_digits("train")[:128])
    runs.save_run_config(run_dir, model, "digits")
    model.save_weights(runs.run_paths(run_dir)["weights"])
    return run_dir


def test_train_conditional_reports_accuracy(cond_run):
    run_dir, out = cond_run
    acc = float(re.search(r"test accuracy: (\d\.\d{4})", out).group(1))
    assert 0.0 <= acc <= 1.0
    assert "num_classes=10" in out
    rc, out_eval, err = run_cli(["evaluate", run_dir, "--no-xla"])  # the same figures again, with labels
    assert rc == 0, out_eval + err
    assert float(re.search(r"test accuracy: (\d\.\d{4})", out_eval).group(1)) == acc
    assert re.search(r"test bits/dim: (\S+)", out_eval).group(1) == re.search(r"test bits/dim: (\S+)", out).group(1)
    model = runs.load_run(run_dir)
    assert model.num_classes == 10
    # the class prior was set from the training labels and survives the reload
    assert abs(np.exp(model.class_log_prior.numpy()).sum() - 1.0) < 1e-5
    assert np.ptp(model.class_log_prior.numpy()) > 0


def test_latent_commands_write_grids(cond_run, plain_run):
    run_dir, _ = cond_run
    rc, out, err = run_cli(["interpolate", run_dir, "--a", "2", "--b", "9", "--steps", "5"])
    assert rc == 0, out + err
    err_ends = float(re.search(r"within (\S+)", out).group(1))
    assert err_ends < 1e-4 and os.path.isfile(os.path.join(run_dir, "interpolate_2_9.png"))
    rc, out, err = run_cli(["manipulate", run_dir, "--attribute", "1:7", "--n", "2", "--strengths", "0,1"])
    assert rc == 0, out + err
    assert os.path.isfile(os.path.join(run_dir, "manipulate_1to7.png"))
    rc, out, err = run_cli(["manipulate", plain_run, "--attribute", "3", "--n", "2"])
    assert rc == 0, out + err
    out_png = os.path.join(plain_run, "by_class.png")
    rc, out, err = run_cli(["sample", run_dir, "--by-class", "--n", "2", "--level-temperatures", "0.5,0.8",
                         "--out", out_png])
    assert rc == 0, out + err
    assert os.path.isfile(out_png)


def test_score_reports_auroc(plain_run, tmp_path):
    prefix = str(tmp_path / "s")
    rc, out, err = run_cli(["score", plain_run, "digits", "--ood", "photos32", "--resize", "--out", prefix])
    assert rc == 0, out + err
    for score in ("bits_per_dim", "typicality", "complexity_corrected"):
        value = float(re.search(rf"AUROC {score}: (\d\.\d{{4}})", out).group(1))
        assert 0.0 <= value <= 1.0
    with open(prefix + ".csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 360 + 1000 and {r["set"] for r in rows} == {"digits", "photos32"}
    assert os.path.isfile(prefix + ".png")


def test_bad_input(cond_run, plain_run, tmp_path):
    run_dir, _ = cond_run
    _error(["train", "--conditional", "--data", "photos32", *TINY, "--run-dir", str(tmp_path / "x")],
           "no class labels")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, 8, 8, 1)).astype(np.uint8)
    path = str(tmp_path / "bad.npz")
    np.savez(path, train=x[:30], train_y=np.r_[np.zeros(15, int), np.ones(15, int)], validation=x[30:35],
             validation_y=np.full(5, 4), test=x[35:], test_y=np.zeros(5, int))
    _error(["train", "--conditional", "--data", path, *TINY, "--run-dir", str(tmp_path / "y")], "out of range")
    np.savez(path, x=x, y=rng.normal(size=40))
    _error(["train", "--conditional", "--data", path, *TINY, "--run-dir", str(tmp_path / "z")], "integers")
    assert not os.path.exists(str(tmp_path / "y" / "checkpoints"))
    _error(["manipulate", run_dir, "--attribute", "12"], "out of range")
    _error(["manipulate", run_dir, "--attribute", "3:3"], "two different")
    _error(["interpolate", run_dir, "--a", "5000"], "out of range")
    _error(["sample", plain_run, "--labels", "1,2"], "unconditional")
    _error(["sample", run_dir, "--labels", "1,12"], "out of range")
    _error(["sample", run_dir, "--level-temperatures", "0.5,0.5,0.5"], "2 floats")
    _error(["score", plain_run, "digits", "--ood", "photos32"], "--resize")


def test_resume_a_conditional_run(cond_run):
    run_dir, _ = cond_run
    rc, out, err = run_cli(["train", "--conditional", "--resume", "--epochs", "2", "--run-dir", run_dir, "--verbose", "0"])
    assert rc == 0, out + err
    assert "resuming from epoch 1" in out and re.search(r"test accuracy: \d\.\d{4}", out)
    model = runs.load_run(run_dir)
    assert model.num_classes == 10
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        assert len(list(csv.DictReader(f))) == 2  # one row per epoch, across the resume
    # a plain --resume continues it as the conditional run it is (the run decides, as for its data)
    rc, out, err = run_cli(["train", "--resume", "--epochs", "3", "--run-dir", run_dir, "--verbose", "0"])
    assert rc == 0, out + err
    assert "class-conditional run" in out and "resuming from epoch 2" in out and "test accuracy" in out
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        assert len(list(csv.DictReader(f))) == 3

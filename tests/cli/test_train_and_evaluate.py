"""Tests of the `tfp-glow` command line, run in-process through `cli.main` on tiny configs."""
import csv
import os
import re

import numpy as np
import pytest

from tfp_glow import cli
from tfp_glow.data import splits
from cli_runner import run_cli

TINY_GLOW = ["--levels", "1", "--steps", "1", "--hidden", "8"]


def _figure(text, what="test bits/dim"):
    found = re.findall(re.escape(what) + r": (-?\d+\.\d{4})(?: |$)", text, flags=re.M)
    assert found, f"no '{what}: X.XXXX' line in:\n{text}"
    value = float(found[-1])
    assert np.isfinite(value)
    return value


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("runs") / "glow-digits")
    rc, out, err = run_cli(["train", "--epochs", "1", *TINY_GLOW, "--no-xla", "--run-dir", run_dir])
    assert rc == 0, out + err
    return run_dir, out


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "sample", "evaluate", "export", "bench"):
        assert command in out


@pytest.mark.parametrize("command", ["train", "sample", "evaluate", "export"])
def test_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: tfp-glow " + command in out
    if command == "train":
        for word in ("--flow", "--data", "digits", "moons", "tfds:NAME", ".npz", "--resume", "--strategy",
                     "--mixed-precision", "--no-xla", "default: 0.7", "--n-bits"):
            assert word in out, word


def test_train_digits_writes_run_dir(digits_run):
    run_dir, out = digits_run
    bpd = _figure(out)
    assert 0 < bpd < 8
    for name in ("config.json", "model.weights.h5", "metrics.csv", "samples_epoch001.png", "samples_final.png",
                 "curves.png", os.path.join("checkpoints", "checkpoint")):
        path = os.path.join(run_dir, name)
        assert os.path.isfile(path) and os.path.getsize(path) > 0, name
    assert os.path.isdir(os.path.join(run_dir, "logs"))
    assert "glow on digits (8x8x1, 5 bits)" in out and "1293 train / 144 validation / 360 test" in out
    assert os.path.join(run_dir, "samples_final.png") in out


def test_sample_and_evaluate_repeat(digits_run, tmp_path):
    run_dir, train_out = digits_run
    out_png = str(tmp_path / "s.png")
    rc, out, err = run_cli(["sample", run_dir, "--n", "16", "--temperature", "0.5", "--out", out_png])
    assert rc == 0, err
    assert os.path.getsize(out_png) > 0 and out_png in out
    first = run_cli(["evaluate", run_dir, "--no-xla"])
    second = run_cli(["evaluate", run_dir, "--no-xla"])
    assert first[0] == second[0] == 0, first[2] + second[2]
    assert _figure(first[1]) == _figure(second[1]) == _figure(train_out)
    rc, out, err = run_cli(["evaluate", run_dir, "--split", "validation", "--no-xla"])
    assert rc == 0 and np.isfinite(_figure(out, "validation bits/dim"))
    # Under XLA (the default) the figure is the same up to float rounding.
    rc, out, err = run_cli(["evaluate", run_dir])
    assert rc == 0, err
    assert abs(_figure(out) - _figure(train_out)) < 2e-3


def test_resume_continues_from_saved_epoch(digits_run, tmp_path):
    import shutil

    run_dir = str(tmp_path / "resumed")
    shutil.copytree(digits_run[0], run_dir)
    rc, out, err = run_cli(["train", "--resume", "--run-dir", run_dir, "--epochs", "2", "--no-xla"])
    assert rc == 0, out + err
    assert "resuming from epoch 1" in out
    assert "Epoch 2/2" in out and "Epoch 1/2" not in out
    assert os.path.isfile(os.path.join(run_dir, "checkpoints", "ckpt-2.index"))
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        assert [row["epoch_1based"] for row in csv.DictReader(f)] == ["1", "2"]  # as the console counts
    assert np.isfinite(_figure(out))
    # Model options that contradict the run's config are refused.
    rc, _, err = run_cli(["train", "--resume", "--run-dir", run_dir, "--hidden", "16"])
    assert rc == 2 and "--resume" in err


def test_train_toy_2d_writes_density(tmp_path):
    run_dir = str(tmp_path / "moons")
    rc, out, err = run_cli(["train", "--data", "moons", "--epochs", "1", "--steps-per-epoch", "5", "--steps", "2",
                         "--hidden", "8", "--no-xla", "--run-dir", run_dir])
    assert rc == 0, out + err
    assert "realnvp on moons" in out
    _figure(out)
    _figure(out, "test nll")
    for name in ("density.png", "samples_final.png", "samples_epoch001.png", "curves.png"):
        assert os.path.getsize(os.path.join(run_dir, name)) > 10_000, name
    rc, out, err = run_cli(["sample", run_dir, "--n", "100"])
    assert rc == 0 and os.path.isfile(os.path.join(run_dir, "samples_t0.7_seed0.png"))


def _npz(tmp_path, name, x):
    path = str(tmp_path / name)
    np.savez(path, x=x)
    return path


def _expect_error(argv, pattern, capsys=None):
    rc, out, err = run_cli(argv)
    assert rc == 2, out + err
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert re.search(pattern, err), err
    return err


@pytest.mark.parametrize("make,pattern", [
    (lambda p: "no_such_data", r"unknown data source 'no_such_data'"),
    (lambda p: str(p / "missing.npz"), r"npz file not found"),
    (lambda p: _npz(p, "odd.npz", np.zeros((20, 7, 7, 1), np.uint8)), r"divisible by 2"),
    (lambda p: _npz(p, "range.npz", np.full((20, 8, 8), 300, np.int16)), r"\[0, 255\]"),
    (lambda p: _npz(p, "nan.npz", np.full((20, 8, 8), np.nan, np.float32)), r"NaN"),
    (lambda p: _npz(p, "empty.npz", np.zeros((0, 8, 8), np.uint8)), r"empty"),
])
def test_bad_data_exits_2_before_training(tmp_path, make, pattern):
    _expect_error(["train", "--data", make(tmp_path), "--epochs", "1", *TINY_GLOW,
                   "--run-dir", str(tmp_path / "run")], pattern)
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_bad_options_exit_2(tmp_path):
    _expect_error(["train", "--data", "moons", "--flow", "glow", "--run-dir", str(tmp_path / "r")],
                  r"glow works on images")
    _expect_error(["train", "--data", "moons", "--n-bits", "5", "--run-dir", str(tmp_path / "r")],
                  r"--n-bits applies to image data")
    _expect_error(["train", "--flow", "nice", "--levels", "2", "--run-dir", str(tmp_path / "r")],
                  r"--levels does not apply")
    _expect_error(["evaluate", str(tmp_path / "nowhere")], r"does not exist")
    os.makedirs(tmp_path / "not_a_run")
    _expect_error(["sample", str(tmp_path / "not_a_run")], r"not a tfp-glow run directory")
    _expect_error(["train", "--resume", "--run-dir", str(tmp_path / "not_a_run")], r"no config.json")


def test_argparse_rejects_unknown_choices(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--strategy", "tpu"])
    assert info.value.code == 2
    assert "invalid choice: 'tpu'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--mixed-precision", "fp8"])
    with pytest.raises(SystemExit):
        cli.main(["train", "--epochs", "0"])


def test_export_writes_saved_model(tmp_path, digits_run):
    pytest.importorskip("tfp_glow.serving")
    path = str(tmp_path / "saved")
    rc, out, err = run_cli(["export", digits_run[0], path, "--signatures", "log_prob,sample"])
    assert rc == 0, out + err
    assert os.path.isfile(os.path.join(path, "saved_model.pb")) and path in out
    _expect_error(["export", digits_run[0], str(tmp_path / "s2"), "--signatures", "nope"], r"nope")


def test_export_versioned_layout_for_tf_serving(tmp_path, digits_run):
    base = str(tmp_path / "served")
    for version, expected in (("3", "3"), ("next", "4")):
        rc, out, err = run_cli(["export", digits_run[0], base, "--signatures", "log_prob", "--version", version])
        assert rc == 0, out + err
        assert os.path.isfile(os.path.join(base, expected, "saved_model.pb"))
        assert os.path.join(base, expected) in out
    _expect_error(["export", digits_run[0], base, "--version", "3"], r"never overwritten")
    _expect_error(["export", digits_run[0], base, "--version", "x"], r"--version must be an int >= 1 or 'next'")
    _expect_error(["export", digits_run[0], base, "--version", "0"], r"version must be an int >= 1")


def test_bench_is_delegated(capsys):
    pytest.importorskip("tfp_glow.bench")
    with pytest.raises(SystemExit) as info:
        cli.main(["bench", "--help"])
    assert info.value.code == 0
    assert "usage: tfp-glow bench" in capsys.readouterr().out


def test_nan_loss_exits_1_naming_last_checkpoint_then_resumes(tmp_path, monkeypatch):
    from tfp_glow.training import callbacks as cb

    original = cb.NaNGuard.on_train_batch_end

    def nan_in_second_epoch(self, batch, logs=None):
        if self._epoch == 1:
            logs = {**(logs or {}), "loss": float("nan")}
        return original(self, batch, logs)

    run_dir = str(tmp_path / "nan")
    monkeypatch.setattr(cb.NaNGuard, "on_train_batch_end", nan_in_second_epoch)
    # no warmup: the learning rate is then a checkpointed variable, checked at the end
    rc, out, err = run_cli(["train", "--epochs", "3", *TINY_GLOW, "--no-xla", "--warmup-steps", "0",
                         "--run-dir", run_dir])
    assert rc == 1, out + err
    assert "error: Training stopped: the loss became nan at epoch 2, step 1" in err
    assert os.path.join(run_dir, "checkpoints", "ckpt-1") in err and "--resume" in err
    assert "Traceback" not in err
    assert sorted(f for f in os.listdir(os.path.join(run_dir, "checkpoints")) if f.endswith(".index")) == \
        ["ckpt-1.index"]

    monkeypatch.setattr(cb.NaNGuard, "on_train_batch_end", original)
    rc, out, err = run_cli(["train", "--resume", "--run-dir", run_dir, "--lr", "5e-4"])
    assert rc == 0, out + err
    assert "resuming from epoch 1" in out and "Epoch 3/3" in out and "lr 0.0005" in out
    assert np.isfinite(_figure(out))
    import tensorflow as tf

    saved_lr = tf.train.load_variable(os.path.join(run_dir, "checkpoints", "ckpt-3"),
                                      "optimizer/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE")
    assert np.isclose(saved_lr, 5e-4)  # --lr overrides the learning rate restored from the checkpoint


def test_load_split_holds_out_fixed_disjoint_fractions(tmp_path):
    x = np.arange(50, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 1), np.uint8)
    only_x = _npz(tmp_path, "only_x.npz", x)
    parts = {s: splits.load_split(only_x, s)[0] for s in ("train", "validation", "test")}
    assert [len(parts[s]) for s in ("train", "validation", "test")] == [40, 5, 5]
    ids = {s: set(parts[s][:, 0, 0, 0].tolist()) for s in parts}
    assert not (ids["train"] & ids["validation"]) and not (ids["train"] & ids["test"])
    assert ids["train"] | ids["validation"] | ids["test"] == set(range(50))
    again = splits.load_split(only_x, "test")[0]
    np.testing.assert_array_equal(again, parts["test"])  # the same holdout every time

    with_test = str(tmp_path / "with_test.npz")
    np.savez(with_test, x=x, test=x[:7])
    assert len(splits.load_split(with_test, "test")[0]) == 7  # an explicit split is used as is
    assert len(splits.load_split(with_test, "train")[0]) == 45  # only validation is held out
    assert len(splits.load_split(with_test, "validation", val_fraction=0.2)[0]) == 10


def test_load_split_image_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(20):
        Image.fromarray(np.full((4, 4, 3), i * 10, np.uint8)).save(folder / f"{i:02d}.png")
    x, info = splits.load_split(str(folder), "train")
    assert x.shape == (16, 4, 4, 3) and info.kind == "image"
    assert splits.load_split(str(folder), "test")[0].shape == (2, 4, 4, 3)


def test_stability_options_are_recorded_and_validated(digits_run, tmp_path):
    import json

    run_dir, out = digits_run
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    assert config["warmup_steps"] == 50 and config["clip_norm"] == 50.0  # the digits recipe
    assert "warmup 50 steps" in out and "clip norm 50" in out
    for opt, bad in (("--warmup-steps", "-1"), ("--clip-norm", "-2"), ("--clip-norm", "nan")):
        rc, o, err = run_cli(["train", opt, bad, "--run-dir", str(tmp_path / "r")])
        assert rc == 2 and opt in err and "Traceback" not in err, err


def test_offline_28x28_and_rgb_sources_train(tmp_path):
    for name, shape in (("digits28", "28x28x1"), ("photos32", "32x32x3")):
        rc, out, err = run_cli(["train", "--data", name, "--levels", "2", "--steps", "1", "--hidden", "8",
                             "--epochs", "1", "--steps-per-epoch", "2", "--no-xla",
                             "--run-dir", str(tmp_path / name)])
        assert rc == 0, out + err
        assert f"on {name} ({shape}, 8 bits)" in out
        assert _figure(out) > 0


def test_an_existing_run_is_never_deleted_without_overwrite_and_then_only_its_own_files(tmp_path):
    """The reproduction of the run-directory issue: a folder with a config.json and a user's
    own logs/server.log."""
    proj = tmp_path / "proj"
    (proj / "logs").mkdir(parents=True)
    (proj / "config.json").write_text("{}")
    (proj / "logs" / "server.log").write_text("keep")
    (proj / "notes.txt").write_text("mine")
    argv = ["train", "--run-dir", str(proj), *TINY_GLOW, "--epochs", "1", "--no-xla"]
    err = _expect_error(argv, r"already holds a run.*--resume.*--overwrite")
    assert str(proj) in err
    assert (proj / "config.json").read_text() == "{}" and (proj / "logs" / "server.log").read_text() == "keep"
    rc, out, err = run_cli(argv + ["--overwrite"])
    assert rc == 0, out + err
    assert "--overwrite: removed" in out
    assert (proj / "logs" / "server.log").read_text() == "keep" and (proj / "notes.txt").read_text() == "mine"
    assert (proj / "config.json").read_text() != "{}"  # the new run's
    # a second --overwrite removes the first run's files only, and the user's stay again
    from tfp_glow import runs

    removed = runs.remove_run_files(str(proj))
    assert any(p.endswith("ckpt-1.index") for p in removed) and any("tfevents" in p for p in removed)
    assert sorted(os.listdir(proj)) == ["logs", "notes.txt"] and os.listdir(proj / "logs") == ["server.log"]


@pytest.mark.parametrize("flow,extra", [("nsf", ["--bins", "4"]), ("maf", ["--transform", "spline", "--bins", "3"])])
def test_train_nsf_and_maf_on_2d_data_write_the_density_figure(tmp_path, flow, extra):
    run_dir = str(tmp_path / flow)
    rc, out, err = run_cli(["train", "--data", "moons", "--flow", flow, "--epochs", "1", "--steps-per-epoch", "5",
                         "--steps", "2", "--hidden", "8", *extra, "--no-xla", "--run-dir", run_dir])
    assert rc == 0, out + err
    assert f"{flow} on moons" in out
    _figure(out, "test nll")
    assert os.path.getsize(os.path.join(run_dir, "density.png")) > 10_000
    rc, out, err = run_cli(["evaluate", run_dir])
    assert rc == 0 and np.isfinite(_figure(out)), out + err


@pytest.mark.parametrize("flow", ["nsf", "maf"])
def test_train_nsf_and_maf_on_flattened_digits(tmp_path, flow):
    run_dir = str(tmp_path / flow)
    rc, out, err = run_cli(["train", "--flow", flow, "--epochs", "1", "--steps", "1", "--hidden", "8", "--no-xla",
                         "--n-samples", "4", "--run-dir", run_dir])
    assert rc == 0, out + err
    assert f"{flow} on digits" in out and 0 < _figure(out) < 8  # 5 bits: a finite, sane bound
    assert os.path.isfile(os.path.join(run_dir, "samples_final.png"))


def test_bad_spline_options_exit_2(tmp_path, capsys):
    _expect_error(["train", "--data", "moons", "--flow", "maf", "--bins", "4", "--run-dir", str(tmp_path / "r")],
                  r"--bins does not apply to --flow maf")
    _expect_error(["train", "--data", "moons", "--flow", "nsf", "--transform", "spline",
                   "--run-dir", str(tmp_path / "r")], r"--transform does not apply to --flow nsf")
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--flow", "nsf", "--bins", "1"])
    assert info.value.code == 2 and "expected an integer >= 2" in capsys.readouterr().err

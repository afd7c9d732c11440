"""`tfp-glow train --mixed-precision`: `auto` (the default) resolves to bf16 on a machine with
native bf16 and records the resolved policy; `--resume` keeps the run's; the figures `train`
reports come from a float32 model with the run's weights.

tests/conftest.py sets `TFP_GLOW_MIXED_PRECISION=none` for the session (the other CLI tests
expect float32 training on this bf16-capable CPU); these tests unset it and say what the
hardware is by monkeypatching `precision.has_native_bf16`.
"""
import json
import os
import re
import shutil

import keras
import numpy as np
import pytest

import tfp_glow as tg
from tfp_glow import data as data_lib
from tfp_glow import runs
from tfp_glow.numerics import precision
from tfp_glow.data import splits
from tfp_glow.cli import train as train_cli
from tfp_glow.models import FlowConfig
from tfp_glow.training import FlowModel
from cli_runner import run_cli

# big enough that bf16 rounding in the conditioners moves the test bits/dim visibly
TINY = ["--levels", "1", "--steps", "2", "--hidden", "16", "--steps-per-epoch", "40", "--warmup-steps", "0",
        "--lr", "5e-3", "--no-xla"]


def _hardware(mp, native):
    """The machine as these tests see it: native bf16 or not, and no environment override."""
    mp.delenv("TFP_GLOW_MIXED_PRECISION", raising=False)
    mp.setattr(precision, "has_native_bf16", lambda *a, **k: native)


def _conditioner_dtypes(model):
    """The compute dtypes of the affine couplings' networks (the ones mixed precision changes)."""
    couplings = [m for m in model.distribution.bijector.submodules if isinstance(m, tg.AffineCoupling)]
    return {c.conditioner.compute_dtype for c in couplings}


def _train(mp, argv):
    """`tfp-glow train argv` -> (rc, out, err, what the run trained: conditioner dtypes and the
    unrounded test bits/dim it returned)."""
    seen = {}
    fit, finish = train_cli._fit, train_cli._finish

    def spy_fit(args, job):
        seen["dtypes"] = _conditioner_dtypes(job.model)
        seen["reduced"] = precision.uses_reduced_precision(job.model)
        return fit(args, job)

    def spy_finish(*a):
        seen["test_bpd"] = finish(*a)
        return seen["test_bpd"]

    mp.setattr(train_cli, "_fit", spy_fit)
    mp.setattr(train_cli, "_finish", spy_finish)
    rc, out, err = run_cli(["train", *argv])
    assert rc == 0, out + err
    assert keras.mixed_precision.global_policy().name == "float32"  # the caller's policy is back
    return out, seen


def _recorded(run_dir):
    with open(os.path.join(run_dir, "config.json")) as f:
        return json.load(f).get("mixed_precision", "(no key)")


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory):
    """A run trained with the default --mixed-precision on a machine reported as native bf16."""
    run_dir = str(tmp_path_factory.mktemp("prec") / "auto-native")
    with pytest.MonkeyPatch.context() as mp:
        _hardware(mp, True)
        out, seen = _train(mp, ["--epochs", "1", *TINY, "--run-dir", run_dir])
    return run_dir, out, seen


def test_auto_resolves_to_bf16_with_native_bf16_and_records_the_resolved_policy(bf16_run):
    run_dir, out, seen = bf16_run
    assert seen["dtypes"] == {"bfloat16"}
    assert _recorded(run_dir) == "mixed_bfloat16"  # never "auto"
    assert "precision mixed_bfloat16 (auto)" in out


def test_auto_without_native_bf16_and_an_explicit_none_train_float32(tmp_path, monkeypatch):
    _hardware(monkeypatch, False)
    out, seen = _train(monkeypatch, ["--epochs", "1", *TINY, "--run-dir", str(tmp_path / "a")])
    assert seen["dtypes"] == {"float32"} and _recorded(str(tmp_path / "a")) == "none"
    assert "precision none (auto)" in out
    _hardware(monkeypatch, True)
    out, seen = _train(monkeypatch, ["--epochs", "1", *TINY, "--mixed-precision", "none",
                                     "--run-dir", str(tmp_path / "b")])
    assert seen["dtypes"] == {"float32"} and _recorded(str(tmp_path / "b")) == "none"
    assert "precision none" in out and "precision none (auto)" not in out


def test_the_environment_replaces_auto(tmp_path, monkeypatch):
    _hardware(monkeypatch, True)
    monkeypatch.setenv("TFP_GLOW_MIXED_PRECISION", "none")
    _, seen = _train(monkeypatch, ["--epochs", "1", *TINY, "--run-dir", str(tmp_path / "r")])
    assert seen["dtypes"] == {"float32"} and _recorded(str(tmp_path / "r")) == "none"


def _float32_reference_bpd(run_dir, policy="float32"):
    """Test bits/dim of a model built here from config.json under `policy`, with model.weights.h5."""
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = FlowModel(FlowConfig.from_dict(config["flow_config"]), n_bits=config["n_bits"],
                          eval_seed=config["eval_seed"])
    finally:
        keras.mixed_precision.set_global_policy(previous)
    model.load_weights(os.path.join(run_dir, "model.weights.h5"))
    model.compile(jit_compile=False)
    x, _ = splits.load_split(config["data"], "test", config["val_fraction"], config["test_fraction"])
    ds = data_lib.make_dataset(x, config["eval_batch_size"], shuffle=False)
    return float(model.evaluate(ds, verbose=0, return_dict=True)["bits_per_dim"])


def test_the_reported_test_figure_of_a_bf16_run_is_a_float32_models(bf16_run):
    run_dir, out, seen = bf16_run
    reference = _float32_reference_bpd(run_dir)
    assert abs(seen["test_bpd"] - reference) < 1e-6
    assert f"test bits/dim: {reference:.4f}" in out
    # the same weights computed in bf16 give another figure: the check above can fail
    assert abs(_float32_reference_bpd(run_dir, "mixed_bfloat16") - reference) > 2e-5
    # and `evaluate` (a float32 model, loaded by runs.load_run) repeats the figure train printed
    rc, ev_out, err = run_cli(["evaluate", run_dir, "--no-xla"])
    assert rc == 0, err
    assert f"test bits/dim: {reference:.4f}" in ev_out


def test_loading_a_run_builds_a_float32_model_whatever_the_global_policy(bf16_run):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = runs.load_run(bf16_run[0])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert _conditioner_dtypes(model) == {"float32"} and not precision.uses_reduced_precision(model)


def test_resume_keeps_the_runs_policy_unless_given(bf16_run, tmp_path, monkeypatch):
    run_dir = str(tmp_path / "resumed")
    shutil.copytree(bf16_run[0], run_dir)
    _hardware(monkeypatch, False)  # auto would now give float32: the run's own policy must win
    out, seen = _train(monkeypatch, ["--resume", "--run-dir", run_dir, "--epochs", "2", "--no-xla"])
    assert "resuming from epoch 1" in out and "precision mixed_bfloat16 (the run's)" in out
    assert seen["dtypes"] == {"bfloat16"} and _recorded(run_dir) == "mixed_bfloat16"
    out, seen = _train(monkeypatch, ["--resume", "--run-dir", run_dir, "--epochs", "3", "--no-xla",
                                     "--mixed-precision", "none"])
    assert "resuming from epoch 2" in out
    assert seen["dtypes"] == {"float32"} and _recorded(run_dir) == "none"


def test_an_old_run_without_the_key_resumes_in_float32(tmp_path, monkeypatch):
    run_dir = str(tmp_path / "old")
    monkeypatch.setenv("TFP_GLOW_MIXED_PRECISION", "none")
    _train(monkeypatch, ["--epochs", "1", *TINY, "--run-dir", run_dir])
    path = os.path.join(run_dir, "config.json")
    with open(path) as f:
        config = json.load(f)
    del config["mixed_precision"]  # as written before the option existed
    with open(path, "w") as f:
        json.dump(config, f)
    _hardware(monkeypatch, True)  # auto would give bf16
    out, seen = _train(monkeypatch, ["--resume", "--run-dir", run_dir, "--epochs", "2", "--no-xla"])
    assert "resuming from epoch 1" in out and "precision none (the run's)" in out
    assert seen["dtypes"] == {"float32"} and _recorded(run_dir) == "none"


def test_conditional_training_resolves_records_and_reports_float32(tmp_path, monkeypatch):
    run_dir = str(tmp_path / "cond")
    _hardware(monkeypatch, True)
    out, seen = _train(monkeypatch, ["--conditional", "--epochs", "1", *TINY, "--run-dir", run_dir])
    assert seen["reduced"] and _recorded(run_dir) == "mixed_bfloat16" and "precision mixed_bfloat16 (auto)" in out
    # train --conditional's test figure is the float32 one `evaluate` (a float32 model) prints
    rc, ev_out, err = run_cli(["evaluate", run_dir, "--no-xla"])
    assert rc == 0, err
    for what in ("test bits/dim", "test accuracy"):
        found = re.findall(what + r": (\d+\.\d{4})", out)
        assert found and found == re.findall(what + r": (\d+\.\d{4})", ev_out), what
    _hardware(monkeypatch, False)
    out, seen = _train(monkeypatch, ["--resume", "--conditional", "--run-dir", run_dir, "--epochs", "2", "--no-xla"])
    assert seen["reduced"] and "precision mixed_bfloat16 (the run's)" in out


def test_the_parser_offers_the_library_choices():
    from tfp_glow.cli import options  # the parser repeats them: it imports no TensorFlow
    assert options.POLICIES == precision.CHOICES
    args = options.build_parser().parse_args(["train"])
    assert args.mixed_precision is None  # "not given": auto for a new run, the run's on --resume

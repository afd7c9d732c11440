"""Seeded training repeats exactly, with and without XLA; `jit_compile="auto"` and what
config.json records.

The train step's dequantization noise is `stateless_uniform(seed=[noise_seed, step])`: under
XLA a stateful `tf.random.uniform` ignores its seed, so before this two seeded XLA runs
differed.
"""
import contextlib
import io
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from tfp_glow import cli, data, models, training
import support

TINY = support.TINY_GLOW
ONE_LEVEL = models.FlowConfig("glow", (8, 8, 1), dict(levels=1, steps=1, hidden_channels=4))  # quick to XLA-compile


def _model(jit, seed=None, config=TINY):
    keras.utils.set_random_seed(0)
    model = training.FlowModel(config, n_bits=5)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit, seed=seed)
    return model


def _fit(model, steps=2):
    x = data.load_digits("train")[:32 * steps]
    history = model.fit(x, batch_size=32, epochs=1, verbose=0, shuffle=False)
    return [w.copy() for w in model.get_weights()], history.history["loss"][0]


def _restart(model, state):
    """Back to a saved state: weights, optimizer step, moments and learning rate."""
    weights, optimizer_values = state
    model.set_weights(weights)
    for v, value in zip(model.optimizer.variables, optimizer_values):
        v.assign(value)


def test_two_seeded_runs_are_identical_without_xla():
    a, loss_a = _fit(_model(False))
    b, loss_b = _fit(_model(False))
    assert loss_a == loss_b
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    c, _ = _fit(_model(False, seed=12345))  # the noise seed matters
    assert any(not np.array_equal(u, v) for u, v in zip(a, c))


def test_two_seeded_runs_are_identical_under_xla():
    # One compiled step (XLA compilation is the slow part) run twice from the same start: a
    # stateful tf.random op would draw new noise the second time (XLA ignores its seed).
    model = _model(True, config=ONE_LEVEL)
    model.initialize(data.load_digits("train")[:256])
    start = ([w.copy() for w in model.get_weights()], [v.numpy() for v in model.optimizer.variables])
    a, loss_a = _fit(model)
    _restart(model, start)
    b, loss_b = _fit(model)
    assert model.jit_compile is True
    assert loss_a == loss_b
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert any(not np.array_equal(u, v) for u, v in zip(a, start[0]))  # it did train


def test_train_noise_is_a_function_of_the_seed_and_the_step():
    model = training.FlowModel(TINY, n_bits=5)
    model.compile(jit_compile=False, seed=7)
    x = tf.constant(data.load_digits("train")[:4])
    seed0 = model.train_noise_seed().numpy()
    np.testing.assert_array_equal(seed0, [7, 0])
    a = model.preprocess(x, seed=model.train_noise_seed())
    assert np.array_equal(a.numpy(), model.preprocess(x, seed=model.train_noise_seed()).numpy())
    model.optimizer.iterations.assign(5)
    np.testing.assert_array_equal(model.train_noise_seed().numpy(), [7, 5])
    b = model.preprocess(x, seed=model.train_noise_seed())
    assert not np.array_equal(a.numpy(), b.numpy())
    # the same levels in both: only the noise inside each bin moved
    np.testing.assert_array_equal(np.floor((a.numpy() + 0.5) * 32), np.floor((b.numpy() + 0.5) * 32))


@contextlib.contextmanager
def _op_determinism():
    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        tf_config.disable_op_determinism()


def test_auto_jit_compile(monkeypatch):
    assert training.resolve_jit_compile("auto") is False  # this machine has no GPU
    assert training.resolve_jit_compile(True) is True and training.resolve_jit_compile(False) is False
    with pytest.raises(ValueError, match="jit_compile"):
        training.resolve_jit_compile("yes")
    real = tf.config.list_physical_devices

    def with_gpu(kind=None):
        gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
        return [gpu] if kind == "GPU" else real(kind) + [gpu]

    monkeypatch.setattr(tf.config, "list_physical_devices", with_gpu)
    assert training.resolve_jit_compile("auto") is True
    with _op_determinism():  # a user who asked for determinism keeps the deterministic kernels
        assert training.resolve_jit_compile("auto") is False
    assert training.resolve_jit_compile("auto") is True
    model = training.FlowModel(TINY, n_bits=5)
    monkeypatch.setattr(tf.config, "list_physical_devices", real)
    model.compile(jit_compile="auto")
    assert model.jit_compile is False


def test_cli_config_records_the_xla_really_used(tmp_path):
    run_dir = str(tmp_path / "run")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["train", "--epochs", "1", "--levels", "1", "--steps", "1", "--hidden", "8",
                       "--steps-per-epoch", "2", "--run-dir", run_dir])  # no --no-xla: "auto"
    assert rc in (0, None), out.getvalue() + err.getvalue()
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    # "auto" on this CPU-only machine compiles without XLA, and the config says so
    assert config["xla"] is False
    assert "xla off" in out.getvalue()

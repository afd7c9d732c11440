"""Variational dequantization: the bound's accounting, checked against autodiff Jacobians and
TFP's `log_prob`; uniform dequantization keeps today's numbers."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_glow import data as data_lib
from tfp_glow.models.dequantization import VariationalDequantizer
from tfp_glow.models import FlowConfig
from tfp_glow.training import FlowModel
from registry import randomize

SHAPE = (4, 4, 1)
N_BITS = 3
CONFIG = FlowConfig("glow", SHAPE, {"levels": 1, "steps": 1, "hidden_channels": 4})


def _randomize_layer(layer, seed, scale):
    rng = np.random.default_rng(seed)
    for w in layer.trainable_weights:
        w.assign(w + scale * rng.standard_normal(w.shape).astype(np.float32))


def _images(n=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n,) + SHAPE).astype(np.uint8)


def _model(dequantization, seed=0):
    keras.utils.set_random_seed(seed)
    kwargs = {} if dequantization is None else {"dequantization": dequantization}
    model = FlowModel(CONFIG, n_bits=N_BITS, **kwargs)
    randomize(model.distribution, seed=seed, scale=0.05)
    return model


def _reference_bpd(model, x, u):
    """`(-log p(y) + D n log 2) / (D ln 2)` with TFP's public `log_prob`, `y` from noise `u`."""
    levels = np.floor(x.astype(np.float64) / 2 ** (8 - N_BITS))
    y = tf.constant(((levels + u) / 2 ** N_BITS - 0.5).astype(np.float32))
    d = int(np.prod(SHAPE))
    return (-model.distribution.log_prob(y).numpy() + d * N_BITS * math.log(2)) / (d * math.log(2))


def test_uniform_is_the_default_and_gives_today_s_numbers():
    x = _images()
    default, uniform = _model(None), _model("uniform")
    assert default.dequantization == "uniform" and default.dequantizer is None
    assert len(default.trainable_variables) == len(uniform.trainable_variables)
    u = default.eval_noise().numpy()
    want = _reference_bpd(default, x, np.broadcast_to(u, x.shape))
    for model in (default, uniform):
        got = model.predict_step(tf.constant(x))["bits_per_dim"].numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5)
    x_pre, log_q = default.dequantize(tf.constant(x), fixed_noise=True)
    assert log_q is None
    np.testing.assert_array_equal(x_pre, default.preprocess(tf.constant(x), fixed_noise=True))


def test_an_untrained_q_is_exactly_uniform_so_the_bound_is_the_uniform_figure():
    x = tf.constant(_images())
    model = _model("variational")
    levels = data_lib.reduce_bits(x, N_BITS)
    v = tf.random.stateless_uniform(tf.shape(levels), seed=[3, 4])
    u, log_q = model.dequantizer.sample_with_log_prob(levels, v)
    np.testing.assert_allclose(u, v, atol=1e-6)  # sigmoid(logit(v)) with identity steps
    np.testing.assert_allclose(log_q, 0.0, atol=1e-4)
    # the whole evaluation: the variational bound with the fixed noise is today's uniform figure
    variational = model.predict_step(x)["bits_per_dim"].numpy()
    want = _reference_bpd(model, x.numpy(), np.broadcast_to(model.eval_noise().numpy(), x.shape))
    np.testing.assert_allclose(variational, want, rtol=1e-5)


def test_log_q_is_minus_the_log_det_of_u_with_respect_to_the_uniform_draw():
    """`v ~ U[0,1)^D` has density 1, so `log q(u | x) = -log|det du/dv|` exactly: an
    independent check of every log-det in q (logistic base, affine steps, sigmoid)."""
    keras.utils.set_random_seed(1)
    deq = VariationalDequantizer((2, 2, 2), n_bits=N_BITS, couplings=2, hidden=8)
    _randomize_layer(deq, seed=2, scale=0.1)
    levels = tf.constant(np.random.default_rng(0).integers(0, 2 ** N_BITS, (3, 2, 2, 2)).astype(np.float32))
    v = tf.random.stateless_uniform((3, 2, 2, 2), seed=[5, 6], minval=0.05, maxval=0.95)
    with tf.GradientTape() as tape:
        tape.watch(v)
        u, log_q = deq.sample_with_log_prob(levels, v)
        u_flat = tf.reshape(u, (3, 8))
    jac = tape.batch_jacobian(u_flat, v).numpy().reshape(3, 8, 8).astype(np.float64)
    sign, logdet = np.linalg.slogdet(jac)
    assert np.all(sign > 0)
    np.testing.assert_allclose(log_q, -logdet, rtol=1e-3, atol=2e-3)
    assert np.all(np.abs(log_q) > 0.1)  # q is no longer uniform
    assert np.all((u.numpy() > 0) & (u.numpy() < 1))
    # u depends on x: the same draw under other levels moves
    u2, _ = deq.sample_with_log_prob(levels + 1.0, v)
    assert not np.allclose(u, u2)


def test_the_bound_adds_log_q_to_the_uniform_accounting_of_the_noise_it_drew():
    x = tf.constant(_images(seed=3))
    model = _model("variational", seed=4)
    _randomize_layer(model.dequantizer, seed=5, scale=0.2)
    x_pre, log_q = model.dequantize(x, fixed_noise=True)
    # x_pre stays in the cell of its level: (levels + u) / 2^n - 1/2 with u in [0, 1)
    levels = data_lib.reduce_bits(x, N_BITS).numpy()
    cell = np.floor((x_pre.numpy().astype(np.float64) + 0.5) * 2 ** N_BITS)
    np.testing.assert_array_equal(cell, levels)
    u = (x_pre.numpy().astype(np.float64) + 0.5) * 2 ** N_BITS - levels
    d = int(np.prod(SHAPE))
    want = _reference_bpd(model, x.numpy(), u) + log_q.numpy() / (d * math.log(2))
    got = model.predict_step(x)["bits_per_dim"].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4)
    assert np.any(np.abs(log_q.numpy()) > 0.1)
    # evaluate() reports the batch mean of the same figure
    model.compile(jit_compile=False)
    result = model.evaluate(tf.data.Dataset.from_tensor_slices(x).batch(3), verbose=0, return_dict=True)
    np.testing.assert_allclose(result["bits_per_dim"], got.mean(), rtol=1e-4)


def test_q_trains_jointly_with_the_flow():
    model = _model("variational")
    model.compile(keras.optimizers.Adam(1e-2), warmup_steps=0)
    deq_vars = {id(w.value) for w in model.dequantizer.trainable_weights}
    assert deq_vars <= {id(w.value) for w in model.trainable_variables}
    before = [w.numpy().copy() for w in model.dequantizer.trainable_weights]
    history = model.fit(tf.data.Dataset.from_tensor_slices(_images(32, seed=7)).batch(8), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    moved = [not np.array_equal(w.numpy(), b) for w, b in zip(model.dequantizer.trainable_weights, before)]
    assert all(moved)


def test_bad_dequantization_options():
    with pytest.raises(ValueError, match="dequantization must be one of"):
        FlowModel(CONFIG, n_bits=N_BITS, dequantization="gaussian")
    with pytest.raises(ValueError, match="needs image data"):
        FlowModel(FlowConfig("realnvp", (2,), {"couplings_per_stage": 2, "hidden": [4]}), n_bits=None,
                  dequantization="variational")
    with pytest.raises(ValueError, match=r"images \[H, W, C\]"):
        VariationalDequantizer((4,), n_bits=3)


def test_the_option_survives_get_config():
    model = _model("variational")
    again = FlowModel.from_config(model.get_config())
    assert again.dequantization == "variational" and again.dequantizer is not None
    assert len(again.trainable_variables) == len(model.trainable_variables)


def test_export_serves_the_bound_with_q_s_fixed_noise(tmp_path):
    x = tf.constant(_images(5, seed=11))
    model = _model("variational", seed=4)
    model.initialize(x)
    _randomize_layer(model.dequantizer, seed=5, scale=0.2)
    x_pre, log_q = model.dequantize(x, fixed_noise=True)
    assert np.any(np.abs(log_q.numpy()) > 0.1)  # q is not uniform: dropping log q would show
    levels = data_lib.reduce_bits(x, N_BITS).numpy()
    u = (x_pre.numpy().astype(np.float64) + 0.5) * 2 ** N_BITS - levels
    d = int(np.prod(SHAPE))
    want_bpd = _reference_bpd(model, x.numpy(), u) + log_q.numpy() / (d * math.log(2))
    want_log_p = model.distribution.log_prob(x_pre).numpy()

    served = tf.saved_model.load(model.export(str(tmp_path / "saved")))
    got = served.signatures["log_prob"](x=x)
    np.testing.assert_allclose(got["bits_per_dim"], want_bpd, rtol=1e-4)
    np.testing.assert_allclose(got["nll"], want_bpd * d * math.log(2), rtol=1e-4)
    np.testing.assert_allclose(got["log_prob"], want_log_p, rtol=1e-4, atol=1e-4)  # the flow's log p(x + u)
    png = tf.stack([tf.io.encode_png(image) for image in x])
    np.testing.assert_allclose(served.signatures["log_prob_image"](image_bytes=png)["bits_per_dim"], want_bpd,
                               rtol=1e-4)
    np.testing.assert_allclose(served.signatures["encode"](x=x)["z"],
                               model.distribution.bijector.inverse(x_pre), rtol=1e-4, atol=1e-5)
    # q's variables are in the SavedModel: changing the live q afterwards changes nothing there
    _randomize_layer(model.dequantizer, seed=6, scale=0.2)
    np.testing.assert_allclose(served.signatures["log_prob"](x=x)["bits_per_dim"], want_bpd, rtol=1e-4)


def test_a_checkpoint_holds_every_weight_of_q(tmp_path):
    # tf.train.Checkpoint (FlowCheckpoint, runs.load_run, --resume) must restore q whole
    x = tf.constant(_images(4, seed=12))
    model = _model("variational", seed=4)
    model.initialize(x)
    _randomize_layer(model.dequantizer, seed=7, scale=0.3)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    fresh = _model("variational", seed=9)
    tf.train.Checkpoint(model=fresh).restore(path).assert_existing_objects_matched()
    assert len(fresh.dequantizer.weights) == len(model.dequantizer.weights) == 14
    for a, b in zip(fresh.dequantizer.weights, model.dequantizer.weights):
        assert a.path == b.path
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(fresh.predict_step(x)["bits_per_dim"], model.predict_step(x)["bits_per_dim"])


def test_the_command_line_trains_resumes_evaluates_and_exports_a_variational_run(tmp_path):
    import json
    import re

    from cli_runner import run_cli
    from tfp_glow.data import splits

    tiny = ["--levels", "1", "--steps", "1", "--hidden", "8", "--no-xla", "--steps-per-epoch", "3", "--verbose", "0"]
    run_dir = str(tmp_path / "vq")
    rc, out, err = run_cli(["train", "--dequantization", "variational", "--epochs", "2", "--run-dir", run_dir, *tiny])
    assert rc == 0, out + err
    assert "variational dequantization" in out and "in q(u|x)" in out
    assert json.load(open(f"{run_dir}/config.json"))["dequantization"] == "variational"
    trained = float(re.search(r"test bits/dim: ([0-9.]+)", out).group(1))
    # the run's identity: a resume cannot switch the dequantization; vectors have no levels to dequantize
    rc, _, err = run_cli(["train", "--resume", "--run-dir", run_dir, "--dequantization", "uniform"])
    assert rc == 2 and "--dequantization variational" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run_cli(["train", "--data", "moons", "--dequantization", "variational",
                          "--run-dir", str(tmp_path / "moons")])
    assert rc == 2 and "applies to image data" in err
    # evaluate rebuilds q from the checkpoint: the figure train reported (before the fix q's
    # coupling nets were missing from checkpoints and came back untrained)
    rc, out, err = run_cli(["evaluate", run_dir])
    assert rc == 0 and f"test bits/dim: {trained:.4f}" in out, out + err
    rc, out, err = run_cli(["train", "--resume", "--run-dir", run_dir, "--epochs", "3"])
    assert rc == 0 and "resuming from epoch 2" in out, out + err
    resumed = float(re.search(r"test bits/dim: ([0-9.]+)", out).group(1))
    # the SavedModel serves the same bound: its per-example figures average to evaluate's
    rc, out, err = run_cli(["export", run_dir, str(tmp_path / "exported")])
    assert rc == 0, out + err
    test_x, _ = splits.load_split("digits", "test")
    served = tf.saved_model.load(str(tmp_path / "exported"))
    bpd = served.signatures["log_prob"](x=tf.constant(np.asarray(test_x)))["bits_per_dim"].numpy()
    assert abs(bpd.mean() - resumed) < 5e-4

"""One `FlowModel` with an optional conditioning input, ActNorm's explicit initialisation, and the
files written before that change (issue 19, items 1 and 2).

The references are independent of the model's own code path: TFP's public
`distribution.log_prob` with `bijector_kwargs`, numpy statistics of what really reaches each
ActNorm, and figures computed by the code before the change (tests/fixtures/run_before_issue19).
"""
import ast
import json
import math
import os
import pathlib
import re
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_glow as tg
from tfp_glow import runs
from tfp_glow.data import labeled
from tfp_glow.bijectors import ActNorm, initialize_actnorm
from tfp_glow.bijectors.conditioning import CONDITIONAL_INPUT, ContextProjection
from tfp_glow.training.conditional import ConditionalFlowModel
from tfp_glow.models import FlowConfig
from tfp_glow.training import FlowModel
from cli_runner import run_cli
import support

K = support.NUM_CLASSES
COND = support.TINY_CONDITIONAL_GLOW
BEFORE = support.FIXTURES / "run_before_issue19"
PACKAGE = pathlib.Path(tg.__file__).parent


@pytest.fixture(scope="module")
def digits():
    x, y, _, _ = labeled.load_labeled_split("digits", "train")
    return x[:128], y[:128]


def _context_layers(model):
    """The context projections of the flow's conditional bijectors (couplings, priors)."""
    found = [getattr(m, "_context_projection", None) for m in model.distribution.bijector.submodules]
    found = [layer for layer in found if isinstance(layer, ContextProjection)]
    assert found
    return found


def _randomize_context_layers(model, seed=0):
    """Give every context projection random weights, so the label changes the likelihood."""
    rng = np.random.default_rng(seed)
    for layer in _context_layers(model):
        for w in layer.weights:
            w.assign(rng.normal(0.0, 0.3, w.shape).astype(np.float32))


def _bpd_reference(model, x_pre, y):
    """Bits/dim of `log p(x | y)` from TFP's public `log_prob` (the discrete-data bound)."""
    log_p = model.distribution.log_prob(x_pre, bijector_kwargs={CONDITIONAL_INPUT: tf.one_hot(y, K)}).numpy()
    d = model.num_dims
    return (-log_p + d * model.n_bits * math.log(2.0)) / (d * math.log(2.0))


# ------------------------------------------------------------------------ no hidden state
def test_the_package_keeps_no_thread_local_state():
    found = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "local" and getattr(node.value, "id", "") == "threading":
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module == "threading":
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not found, f"threading.local in the package: {found}"


def test_conditional_model_keeps_only_its_own_methods():
    """Steps, initialisation and the latent maps exist once, in FlowModel."""
    shared = {"train_step", "test_step", "predict_step", "initialize", "sample", "sample_images", "encode",
              "decode", "log_prob_and_bpd", "log_prob", "_weighted", "_scores"}
    assert not shared & set(vars(ConditionalFlowModel)), shared & set(vars(ConditionalFlowModel))
    assert {"classify", "marginal_log_prob", "set_class_prior"} <= set(vars(ConditionalFlowModel))


def test_actnorm_maps_are_pure():
    """Passing data never initialises an ActNorm: only the explicit step does."""
    an = ActNorm(2)
    x = tf.constant(np.random.default_rng(0).normal(3.0, 2.0, (16, 2, 2, 2)).astype(np.float32))
    np.testing.assert_array_equal(an.inverse(x).numpy(), x.numpy())  # identity until initialised
    an.forward(x)
    assert not an.is_initialized and np.all(an.parameters_layer.bias.numpy() == 0.0)
    initialize_actnorm(an, x)
    assert an.is_initialized


# ------------------------------------------------------------ ActNorm init through a flow
@pytest.mark.parametrize("conditional", [False, True])
def test_initialize_actnorm_normalises_every_actnorm_of_a_multiscale_flow(digits, conditional):
    """After the explicit pass, the batch leaves every ActNorm (inner levels behind Split
    included) with zero mean and unit variance per channel, in TFP's own data -> latent pass."""
    x, y = digits
    kwargs = dict(levels=2, steps=2, hidden_channels=8, num_classes=K if conditional else 0)
    dist = FlowConfig("glow", (8, 8, 1), kwargs).build()
    x_pre = tg.data.dequantize(tg.data.reduce_bits(x, 5), 5, seed=[1, 2])
    bij_kwargs = {CONDITIONAL_INPUT: tf.one_hot(y, K)} if conditional else {}
    initialize_actnorm(dist.bijector, x_pre, **bij_kwargs)
    layers = [m for m in dist.bijector.submodules if isinstance(m, ActNorm)]
    assert len(layers) == 4 and all(a.is_initialized for a in layers)
    seen = {}
    for an in layers:  # record what each ActNorm puts out in a plain pass
        real = an._inverse
        an._inverse = lambda t, _real=real, _an=an: seen.setdefault(_an.name, _real(t))
    try:
        dist.bijector.inverse(x_pre, **bij_kwargs)
    finally:
        for an in layers:
            del an._inverse
    assert set(seen) == {a.name for a in layers}
    for name, out in seen.items():
        flat = out.numpy().reshape(-1, out.shape[-1]).astype(np.float64)
        np.testing.assert_allclose(flat.mean(axis=0), 0.0, atol=1e-3, err_msg=name)
        np.testing.assert_allclose(flat.std(axis=0), 1.0, atol=1e-2, err_msg=name)


# -------------------------------------------------------------- the conditioning input
def test_a_conditional_train_step_gets_the_labels_of_its_batch(digits):
    """`fit`'s logged loss is the bits/dim of `log p(x | y)` with the batch's own labels (TFP's
    public log_prob on the same training noise), and differs from other labels'."""
    x, y = digits
    x, y = x[:32], y[:32]
    model = ConditionalFlowModel(COND, n_bits=5)
    model.compile(keras.optimizers.SGD(0.0), warmup_steps=0, seed=7)
    model.initialize(x, labels=y)
    _randomize_context_layers(model)
    x_pre = model.preprocess(x, seed=tf.constant([7, 0]))  # the first step's noise (train_noise_seed)
    want = _bpd_reference(model, x_pre, y).mean()
    other = _bpd_reference(model, x_pre, (y + 1) % K).mean()
    assert abs(want - other) > 1e-3  # the labels matter
    logs = model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False, set_prior=False).history
    assert logs["loss"][0] == pytest.approx(want, rel=1e-5)


def test_conditional_training_through_a_gradient_tape_loop(digits):
    """The explicit `labels=` of `log_prob_and_bpd` carries gradients to the label layers."""
    x, y = digits
    model = ConditionalFlowModel(COND, n_bits=5)
    model.initialize(x, labels=y)
    opt = keras.optimizers.Adam(5e-3)
    context_vars = [w.value for layer in _context_layers(model) for w in layer.weights]
    x_pre = model.preprocess(x, fixed_noise=True)
    losses = []
    for _ in range(15):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model.log_prob_and_bpd(x_pre, labels=tf.constant(y))[2])
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply(grads, model.trainable_variables)
        losses.append(float(loss))
    assert losses[-1] < losses[0] - 0.05
    assert max(float(tf.reduce_max(tf.abs(v))) for v in context_vars) > 0.0  # the label layers learned
    # the same figure as TFP's public path, with the labels
    np.testing.assert_allclose(model.log_prob_and_bpd(x_pre, labels=y)[2].numpy(), _bpd_reference(model, x_pre, y),
                               rtol=1e-5)


def test_labels_and_context_are_the_same_conditioning(digits):
    x, y = digits
    x, y = x[:16], y[:16]
    model = ConditionalFlowModel(COND, n_bits=5)
    model.initialize(x, labels=y)
    _randomize_context_layers(model, seed=1)
    onehot = np.eye(K, dtype=np.float32)[y]
    np.testing.assert_allclose(model.log_prob(x, y), model.log_prob(x, context=onehot), rtol=1e-6)
    z = model.encode(x, y)
    np.testing.assert_allclose(model.encode(x, context=onehot), z, atol=1e-6)
    np.testing.assert_allclose(model.decode(z, context=onehot), model.decode(z, y), atol=1e-6)
    with pytest.raises(ValueError, match=r"shape \[16, 10\]"):
        model.log_prob(x, context=onehot[:, :3])


def test_a_plain_flow_model_takes_a_context_tensor(digits):
    """`FlowModel` itself trains a conditional flow whose `y` is the context tensor `[N, K]`."""
    x, y = digits
    onehot = np.eye(K, dtype=np.float32)[y]
    model = FlowModel(COND, n_bits=5)
    assert model.is_conditional and model.context_dim == K
    model.compile(keras.optimizers.Adam(1e-3), warmup_steps=0)
    h = model.fit(x, onehot, batch_size=64, epochs=1, verbose=0)
    assert np.isfinite(h.history["loss"][0]) and model.is_initialized
    x_pre = model.preprocess(x[:8], fixed_noise=True)
    np.testing.assert_allclose(model.log_prob(x[:8], context=onehot[:8]), model.distribution.log_prob(
        x_pre, bijector_kwargs={CONDITIONAL_INPUT: onehot[:8]}), rtol=1e-5)
    assert model.sample(2, seed=0, context=onehot[:2]).shape == (2, 8, 8, 1)
    with pytest.raises(ValueError, match="class-conditional"):
        model.log_prob(x[:8], labels=y[:8])
    with pytest.raises(ValueError, match="context"):
        model.fit(x, batch_size=64, epochs=1, verbose=0)


def test_an_unconditional_model_refuses_a_conditioning_input(digits, tiny_glow):
    x, y = digits
    model = tiny_glow
    model.initialize(x)
    for call in (lambda: model.sample(2, labels=[0, 1]), lambda: model.encode(x[:2], y[:2]),
                 lambda: model.log_prob(x[:2], context=np.eye(K, dtype=np.float32)[:2])):
        with pytest.raises(ValueError, match="unconditional"):
            call()


# ------------------------------------------------------------------ files written before
def test_an_old_conditional_run_directory_loads_with_the_same_figures():
    ref = json.loads((BEFORE / "reference.json").read_text())
    model = runs.load_run(str(BEFORE / "conditional_run"))
    assert isinstance(model, ConditionalFlowModel) and model.is_initialized
    xt, yt, _, _ = labeled.load_labeled_split("digits", "test")
    np.testing.assert_allclose(model.log_prob(xt[:8], yt[:8]), ref["log_prob"], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(model.marginal_log_prob(xt[:8]), ref["marginal_log_prob"], rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(model.classify(xt[:8]), ref["classify"])
    np.testing.assert_allclose(model.encode(xt[:2], yt[:2]).numpy().reshape(2, -1)[:, :16], ref["encode"], atol=1e-4)
    got = model.sample(2, 0.7, seed=3, labels=[1, 2]).numpy().reshape(2, -1)[:, :16]
    np.testing.assert_allclose(got, ref["sample"], atol=1e-4)


def test_an_old_conditional_run_evaluates_and_resumes(tmp_path):
    run_dir = str(tmp_path / "old")
    shutil.copytree(BEFORE / "conditional_run", run_dir)
    rc, out, err = run_cli(["evaluate", run_dir, "--no-xla"])
    assert rc == 0, out + err
    assert re.search(r"test accuracy: \d\.\d{4}", out)
    # --resume without --conditional: the run decides; it trains its second epoch
    rc, out, err = run_cli(["train", "--resume", "--run-dir", run_dir, "--epochs", "2", "--verbose", "0",
                            "--no-xla", "--n-samples", "10"])
    assert rc == 0, out + err
    assert "resuming from epoch 1" in out and "test accuracy" in out
    config = json.loads(open(os.path.join(run_dir, "config.json")).read())
    assert config["epochs_done"] == 2 and config["conditional"] and config["num_classes"] == K
    assert "image_size" in config and "grayscale" in config  # recorded now, as for every run
    assert len(open(os.path.join(run_dir, "metrics.csv")).read().strip().splitlines()) == 3  # header + 2 epochs


def test_old_keras_files_load_with_the_same_figures():
    ref = json.loads((BEFORE / "reference.json").read_text())
    xt, yt, _, _ = labeled.load_labeled_split("digits", "test")
    plain = keras.models.load_model(BEFORE / "flow_model.keras")
    assert type(plain) is FlowModel
    np.testing.assert_allclose(plain.predict(xt[:8], verbose=0)["log_prob"], ref["plain_log_prob"], rtol=1e-5,
                               atol=1e-3)
    cond = keras.models.load_model(BEFORE / "conditional_flow_model.keras")
    assert type(cond) is ConditionalFlowModel
    np.testing.assert_allclose(cond.log_prob(xt[:8], yt[:8]), ref["cond_keras_log_prob"], rtol=1e-5, atol=1e-3)
    result = cond.evaluate(xt[:64], yt[:64], verbose=0, return_dict=True)
    for key, value in ref["cond_keras_eval"].items():
        assert result[key] == pytest.approx(value, rel=1e-5), key


# ------------------------------------------------------------------ one training command
def test_train_conditional_initialises_actnorm_replica_safely(tmp_path, monkeypatch):
    """`train --conditional` goes through train.py's build: ActNorm by
    `initialize_actnorm_identically`, from training images with their own labels."""
    from tfp_glow.training import distribute

    calls = []
    real = distribute.initialize_actnorm_identically

    def recording(model, batch, *args, **kwargs):
        calls.append(batch)
        return real(model, batch, *args, **kwargs)

    monkeypatch.setattr(distribute, "initialize_actnorm_identically", recording)
    run_dir = str(tmp_path / "cond")
    rc, out, err = run_cli(["train", "--conditional", "--epochs", "1", "--steps-per-epoch", "1", "--levels", "2",
                            "--steps", "1", "--hidden", "8", "--no-xla", "--verbose", "0", "--n-samples", "10",
                            "--run-dir", run_dir])
    assert rc == 0, out + err
    assert len(calls) == 1
    images, labels = calls[0]
    x_all, y_all, _, _ = labeled.load_labeled_split("digits", "train")
    for i in range(0, len(images), 17):  # each image comes with its own label
        match = np.flatnonzero((x_all == images[i]).all(axis=(1, 2, 3)))
        assert labels[i] in set(y_all[match].tolist())
    config = json.loads(open(os.path.join(run_dir, "config.json")).read())
    assert config["conditional"] and config["image_size"] is None and config["grayscale"] is False


def test_reset_learning_rate_gives_back_what_compile_set():
    """The resumed run's rate is compile's (warmup and schedule defined once, in compile)."""
    model = FlowModel(FlowConfig("realnvp", (2,), dict(hidden=(8,), couplings_per_stage=2)), n_bits=None)
    model.compile(keras.optimizers.Adam(3e-3), warmup_steps=0)
    model.optimizer.learning_rate = 1e-5  # as a checkpoint of another rate would restore it
    model.reset_learning_rate()
    assert float(model.optimizer.learning_rate) == pytest.approx(3e-3)
    warm = FlowModel(FlowConfig("realnvp", (2,), dict(hidden=(8,), couplings_per_stage=2)), n_bits=None)
    warm.compile(keras.optimizers.Adam(3e-3), warmup_steps=10)
    warm.reset_learning_rate()
    # the linear warmup, lr * (t + 1) / warmup_steps
    assert float(warm.optimizer._learning_rate(tf.constant(4))) == pytest.approx(3e-3 * 5 / 10)

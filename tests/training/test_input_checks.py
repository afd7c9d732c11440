"""One input check at every entry point of the Python API, eager up front and in-graph per batch.

Eager: `evaluate`, `predict`, `model(x)`, `log_prob`, `encode`, `decode`, `classify` and `fit`'s
`validation_data` refuse bad arrays with a one-line `ValueError` before any step. In-graph: a bad
batch of a `tf.data` pipeline (one no one looked at up front) stops `fit`, `evaluate` and
`predict` with a `BadBatchError` naming the batch, and its update is never applied.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_glow as tg
from tfp_glow.training import input_checks

GLOW = tg.FlowConfig("glow", (8, 8, 1), dict(levels=1, steps=1, hidden_channels=8))
COND = tg.FlowConfig("glow", (8, 8, 1), dict(levels=1, steps=1, hidden_channels=8, num_classes=3))
TOY = tg.FlowConfig("realnvp", (2,), dict(couplings_per_stage=2, hidden=(8,)))


@pytest.fixture(scope="module")
def digits():
    return tg.data.load_digits("train")[:128]


@pytest.fixture(scope="module")
def model(digits):
    m = tg.FlowModel(GLOW, n_bits=5)
    m.compile(jit_compile=False)
    m.initialize(digits)
    return m


def _bad_images(digits):
    floats01 = digits[:8].astype(np.float32) / 255.0
    above = digits[:8].astype(np.int32) + 300
    nan = digits[:8].astype(np.float32)
    nan[2, 3, 4, 0] = np.nan
    return {"floats in [0, 1]": (floats01, "multiplied by 255"), "values above 255": (above, "[0, 255]"),
            "NaN": (nan, "finite"), "wrong shape": (np.zeros((4, 16, 16, 1), np.uint8), "[None, 8, 8, 1]")}


ENTRY_POINTS = {
    "evaluate": lambda m, x: m.evaluate(x, batch_size=4, verbose=0),
    "predict": lambda m, x: m.predict(x, batch_size=4, verbose=0),
    "call": lambda m, x: m(x),
    "log_prob": lambda m, x: m.log_prob(x),
    "encode": lambda m, x: m.encode(x),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_entry_point_refuses_bad_images_in_one_line(model, digits, entry):
    for kind, (x, fragment) in _bad_images(digits).items():
        with pytest.raises(ValueError) as excinfo:
            ENTRY_POINTS[entry](model, x)
        text = str(excinfo.value)
        assert fragment in text, (kind, text)
        assert "BroadcastTo" not in text and "\n" not in text, (kind, text)  # one line, not Keras' wrapper
    assert np.all(np.isfinite(model.log_prob(digits[:4])))  # and good data still passes


def test_decode_checks_the_latent(model):
    with pytest.raises(ValueError, match=r"latent.*finite"):
        model.decode(np.full((2, *model.latent_shape), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"latents of shape \[None, 8, 8, 1\]"):
        model.decode(np.zeros((2, 3), np.float32))
    assert model.decode(np.zeros((2, *model.latent_shape), np.float32)).shape == (2, 8, 8, 1)


def test_classify_refuses_floats_in_the_unit_interval(digits):
    cond = tg.ConditionalFlowModel(COND, n_bits=5)
    cond.initialize(digits[:32])
    with pytest.raises(ValueError, match="multiplied by 255"):
        cond.classify(digits[:4].astype(np.float32) / 255.0)
    assert cond.classify(digits[:4]).shape == (4,)


@pytest.mark.parametrize("validation", ["arrays", "dataset"])
def test_bad_validation_data_fails_before_the_first_step(digits, validation):
    m = tg.FlowModel(GLOW, n_bits=5)
    m.compile(jit_compile=False)
    bad = digits.astype(np.float32) / 255.0
    val = (bad,) if validation == "arrays" else tf.data.Dataset.from_tensor_slices(bad).batch(32)
    with pytest.raises(ValueError, match="validation_data.*multiplied by 255"):
        m.fit(digits, batch_size=64, epochs=1, verbose=0, validation_data=val)
    assert int(m.optimizer.iterations) == 0


def test_a_bad_later_validation_batch_stops_fit_naming_it(digits):
    bad = digits[64:128].astype(np.int32)
    bad[0, 0, 0, 0] = 1000
    m = tg.FlowModel(GLOW, n_bits=5)
    m.compile(jit_compile=False)
    with pytest.raises(input_checks.BadBatchError, match="Validation data, after epoch 1, batch 2 holds pixel"):
        m.fit(digits[:64], batch_size=64, epochs=1, verbose=0, validation_data=_good_then_bad(digits, bad))


def _good_then_bad(digits, bad):
    """A dataset of two batches of 64: good uint8-valued levels, then `bad` (same dtype)."""
    x = np.concatenate([digits[:64].astype(bad.dtype), bad]).astype(bad.dtype)
    return tf.data.Dataset.from_tensor_slices(x).batch(64)


@pytest.mark.parametrize("kind", ["above_255", "not_whole", "nan"])
def test_a_bad_later_batch_stops_fit_naming_it_and_is_never_applied(digits, kind):
    bad = digits[64:128].astype(np.float32)
    if kind == "above_255":
        bad[5, 1, 1, 0] = 400.0
    elif kind == "not_whole":
        bad /= 255.0
    else:
        bad[0, 0, 0, 0] = np.nan
    message = {"above_255": "outside 0..255", "not_whole": "not whole 8-bit levels", "nan": "NaN or infinite"}[kind]
    models = []
    for data in (_good_then_bad(digits, bad), _good_then_bad(digits, bad).take(1)):
        keras.utils.set_random_seed(0)  # the same initial weights
        m = tg.FlowModel(GLOW, n_bits=5)
        m.compile(jit_compile=False, seed=4)
        models.append(m)
        if len(models) == 1:
            with pytest.raises(input_checks.BadBatchError, match=f"epoch 1, batch 2 holds .*{message}"):
                m.fit(data, epochs=1, verbose=0)
        else:  # the reference: the good batch alone
            m.fit(data, epochs=1, verbose=0)
    stopped, reference = models
    assert int(stopped.optimizer.iterations) == 1 == int(reference.optimizer.iterations)
    for a, b in zip(stopped.weights, reference.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)
    assert float(stopped.nonfinite_tracker.result()) == 0.0  # a bad input is not a non-finite step


def test_the_in_graph_check_runs_under_xla_on_int_data(digits):
    bad = digits[64:128].astype(np.int32)
    bad[-1, -1, -1, 0] = -1
    m = tg.FlowModel(GLOW, n_bits=5)
    m.compile(jit_compile=True)
    with pytest.raises(input_checks.BadBatchError, match="batch 2 holds pixel values outside 0..255"):
        m.fit(_good_then_bad(digits, bad), epochs=1, verbose=0)
    assert int(m.optimizer.iterations) == 1


def test_a_bad_later_batch_stops_evaluate_and_predict(model, digits):
    bad = digits[64:128].astype(np.int32) * 4  # levels up to 64: fine; then one above 255
    bad[3, 3, 3, 0] = 256
    ds = _good_then_bad(digits, bad)
    with pytest.raises(input_checks.BadBatchError, match="Evaluation data, batch 2 holds pixel values outside"):
        model.evaluate(ds, verbose=0)
    with pytest.raises(input_checks.BadBatchError, match="Prediction data, batch 2 holds pixel values outside"):
        model.predict(ds, verbose=0)
    assert np.isfinite(model.evaluate(ds.take(1), verbose=0, return_dict=True)["bits_per_dim"])


def test_vectors_get_the_finiteness_check_in_the_graph():
    good = tg.data.toy_2d("moons", 128).astype(np.float32)
    bad = good.copy()
    bad[100, 1] = np.inf
    m = tg.FlowModel(TOY, n_bits=None)
    m.compile(jit_compile=False)
    m.initialize(good)
    with pytest.raises(input_checks.BadBatchError, match="batch 2 holds NaN or infinite values"):
        m.fit(tf.data.Dataset.from_tensor_slices(bad).batch(64), epochs=1, verbose=0)


def test_uint8_images_add_no_op_to_the_step(model):
    assert input_checks.batch_code(model, tf.zeros([2, 8, 8, 1], tf.uint8)) is None
    code = input_checks.batch_code(model, tf.constant([[[[0.5]] * 8] * 8], tf.float32))
    assert int(code) == 4  # not whole levels, nothing else


def test_a_flow_model_on_a_class_config_points_to_the_conditional_model(digits):
    labels = np.arange(len(digits)) % 3
    m = tg.FlowModel(COND, n_bits=5)
    m.compile(jit_compile=False)
    for call in (lambda: m.fit(digits, labels, epochs=1, verbose=0),
                 lambda: m.fit(tf.data.Dataset.from_tensor_slices((digits, labels)).batch(32), epochs=1, verbose=0),
                 lambda: m.fit(digits, epochs=1, verbose=0),
                 lambda: m.log_prob(digits[:4])):
        with pytest.raises(ValueError, match="use tg.ConditionalFlowModel") as excinfo:
            call()
        assert "bijector_kwargs" not in str(excinfo.value) and "Tensor conversion" not in str(excinfo.value)
    assert int(m.optimizer.iterations) == 0

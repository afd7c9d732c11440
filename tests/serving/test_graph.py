"""tfp_glow.serving.graph: the pieces the signatures call equal the live model's own methods,
with and without a label context, and an empty batch gives empty outputs."""
import numpy as np
import pytest
import tensorflow as tf

from tfp_glow import data as data_lib
from tfp_glow.training.conditional import ConditionalFlowModel
from tfp_glow.models import FlowConfig
from tfp_glow.serving.graph import ServingGraph, unless_empty
from tfp_glow.training import FlowModel

KWARGS = dict(levels=2, steps=1, hidden_channels=4)
X = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 1)).astype(np.uint8)


@pytest.fixture(scope="module", params=["plain", "conditional"])
def model(request):
    if request.param == "plain":
        m = FlowModel(FlowConfig("glow", (8, 8, 1), KWARGS), n_bits=5)
    else:
        m = ConditionalFlowModel(FlowConfig("glow", (8, 8, 1), dict(KWARGS, num_classes=3)), n_bits=5)
    m.initialize(X)
    return m


def test_pieces_equal_the_model(model):
    g = ServingGraph(model)
    label = tf.constant([0, 1, 2, 1, 0]) if g.conditional else None
    labels = {} if label is None else {"labels": label}
    assert g.event_shape == g.latent_shape == (8, 8, 1) and g.num_classes == (3 if label is not None else 0)
    x_pre, log_q = g.dequantize(X)
    np.testing.assert_allclose(x_pre, model.preprocess(X, fixed_noise=True), atol=1e-6)
    want = model.log_prob_and_bpd(x_pre, log_q, **labels)
    got = g.scores(x_pre, log_q, label)
    for key, w in zip(("log_prob", "nll", "bits_per_dim"), want):
        np.testing.assert_allclose(got[key], w, rtol=1e-6)
    z = g.inverse(x_pre, label)
    np.testing.assert_allclose(z, model.encode(X) if label is None else model.encode(X, label), atol=1e-5)
    out = g.forward(z, label)
    np.testing.assert_allclose(out["x"], x_pre, atol=1e-4)  # decode(encode(x)) = x
    np.testing.assert_array_equal(out["images"], data_lib.to_uint8(out["x"], 5))
    if g.conditional:
        c = g.classify(x_pre)
        np.testing.assert_array_equal(c["label"], model.classify(X))
        np.testing.assert_allclose(tf.reduce_logsumexp(c["log_posterior"], axis=-1), 0.0, atol=1e-5)


def test_an_empty_batch_gives_empty_outputs(model):
    g = ServingGraph(model)
    label = tf.zeros([0], tf.int32) if g.conditional else None
    empty = tf.zeros([0, 8, 8, 1])
    assert {k: v.shape for k, v in g.scores(empty, None, label).items()} == {
        "log_prob": (0,), "nll": (0,), "bits_per_dim": (0,)}
    assert g.inverse(empty, label).shape == (0, 8, 8, 1)
    assert g.forward(empty, label)["images"].shape == (0, 8, 8, 1)
    assert unless_empty(tf.zeros([2, 1]), lambda: tf.ones([2]), tf.zeros([0])).shape == (2,)

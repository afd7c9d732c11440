"""tfp_glow.models.sampling: the one latent sampler and seed helper, against TensorFlow's stateless RNG
and against the samplers that use it (FlowModel.sample, latent.draw_latent, the SavedModel's)."""
import numpy as np
import pytest
import tensorflow as tf

from tfp_glow import serving
from tfp_glow.analysis import latent
from tfp_glow.models import sampling
from tfp_glow.models import FlowConfig
from tfp_glow.training import FlowModel

LATENT = (4, 4, 2)


@pytest.fixture(scope="module")
def glow():
    model = FlowModel(FlowConfig("glow", (8, 8, 1), dict(levels=2, steps=1, hidden_channels=4)), n_bits=5)
    model.initialize(np.random.default_rng(0).integers(0, 256, (16, 8, 8, 1)).astype(np.uint8))
    return model


def test_stateless_seed_of_an_int_a_pair_and_none():
    np.testing.assert_array_equal(sampling.stateless_seed(7), [7, 0])
    np.testing.assert_array_equal(sampling.stateless_seed(np.int64(7)), [7, 0])
    np.testing.assert_array_equal(sampling.stateless_seed([3, 9]), [3, 9])
    assert sampling.stateless_seed(tf.constant(5)).dtype == tf.int32
    a, b = sampling.stateless_seed(None).numpy(), sampling.stateless_seed(None).numpy()
    assert a.shape == (2,) and not np.array_equal(a, b)  # fresh pairs from the global generator
    with pytest.raises(ValueError, match="integer"):
        sampling.stateless_seed(1.5)
    with pytest.raises(ValueError, match=r"pair \[2\]"):
        sampling.stateless_seed([1, 2, 3])


def test_draw_latent_is_the_stateless_normal_times_temperature():
    want = tf.random.stateless_normal([3, *LATENT], seed=[11, 0]).numpy()
    np.testing.assert_array_equal(sampling.draw_latent(LATENT, 3, 1.0, 11), want)
    np.testing.assert_allclose(sampling.draw_latent(LATENT, 3, 0.7, 11), 0.7 * want, rtol=1e-6)
    # a batch of temperatures: [n, *T.shape, *latent], every T scaling the same eps
    got = sampling.draw_latent(LATENT, 3, [[0.5, 1.0]], 11).numpy()
    assert got.shape == (3, 1, 2, *LATENT)
    np.testing.assert_allclose(got[:, 0, 0], 0.5 * want, rtol=1e-6)
    np.testing.assert_array_equal(got[:, 0, 1], want)
    scale = np.random.default_rng(0).uniform(size=LATENT).astype(np.float32)
    np.testing.assert_allclose(sampling.draw_latent(LATENT, 3, 2.0, 11, scale=scale), 2.0 * want * scale, rtol=1e-6)
    assert sampling.draw_latent(LATENT, 0, 1.0, 11).shape == (0, *LATENT)


def test_draw_latent_refuses_bad_arguments():
    for n in (-1, 2.0, True, None):
        with pytest.raises(ValueError, match="n must be an int >= 0"):
            sampling.draw_latent(LATENT, n)
    for t in (-0.1, float("nan"), [1.0, float("inf")]):
        with pytest.raises(ValueError, match="temperature must be finite and >= 0"):
            sampling.draw_latent(LATENT, 2, t, 0)


def test_draw_latent_in_a_graph_with_a_tensor_n():
    fn = tf.function(lambda n, t, s: sampling.draw_latent(LATENT, n, t, s), input_signature=[
        tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.float32), tf.TensorSpec([2], tf.int32)])
    assert fn.get_concrete_function().structured_outputs.shape.as_list() == [None, *LATENT]
    np.testing.assert_allclose(fn(4, 0.5, [2, 0]), 0.5 * tf.random.stateless_normal([4, *LATENT], seed=[2, 0]),
                               rtol=1e-6)


def test_a_row_is_a_batch_of_one():
    t, s = np.float32([0.7, 1.0, 0.0]), np.int32([5, 5, 9])
    rows = sampling.draw_rows(LATENT, t, s).numpy()
    for i in range(3):
        np.testing.assert_allclose(rows[i], t[i] * tf.random.stateless_normal(LATENT, seed=[s[i], 0]), rtol=1e-6)
        np.testing.assert_allclose(rows[i], sampling.draw_latent(LATENT, 1, t[i], int(s[i]))[0], rtol=1e-6)
    assert sampling.draw_rows(LATENT, np.zeros([0], np.float32), np.zeros([0], np.int32)).shape == (0, *LATENT)


def test_the_model_the_toolkit_and_the_savedmodel_draw_the_same_latent(glow):
    z = sampling.draw_latent(glow.latent_shape, 4, 0.6, 21)
    np.testing.assert_allclose(glow.sample(4, 0.6, seed=21), glow.decode(z), atol=1e-5)
    np.testing.assert_allclose(serving.sample_stateless(glow, 4, 0.6, 21)["x"], glow.decode(z), atol=1e-5)
    levels = latent.level_map(glow)
    scale = np.where(levels == 0, 0.3, 0.8).astype(np.float32)
    np.testing.assert_allclose(latent.draw_latent(glow, 4, [0.3, 0.8], seed=21),
                               sampling.draw_latent(glow.latent_shape, 4, 1.0, 21) * scale, rtol=1e-6)
    np.testing.assert_allclose(glow.sample(4, 1.0, seed=21, level_temperatures=[0.3, 0.8]),
                               glow.decode(latent.draw_latent(glow, 4, [0.3, 0.8], seed=21)), atol=1e-5)


def test_the_draws_compile_with_xla_and_keep_their_contracts():
    """XLA draws its own numbers, but a seed still fixes them, and a row is a batch of one."""
    latent_fn = tf.function(lambda n, t, s: sampling.draw_latent(LATENT, n, t, s), jit_compile=True)
    rows_fn = tf.function(lambda t, s: sampling.draw_rows(LATENT, t, s), jit_compile=True)
    a = latent_fn(tf.constant(3), tf.constant(0.5), tf.constant([7, 0])).numpy()
    assert a.shape == (3, *LATENT) and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, latent_fn(tf.constant(3), tf.constant(0.5), tf.constant([7, 0])))
    assert not np.allclose(a, latent_fn(tf.constant(3), tf.constant(0.5), tf.constant([8, 0])))
    rows = rows_fn(tf.constant([0.5, 1.0]), tf.constant([7, 9])).numpy()
    np.testing.assert_allclose(rows[0], latent_fn(tf.constant(1), tf.constant(0.5), tf.constant([7, 0]))[0], rtol=1e-6)

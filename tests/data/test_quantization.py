"""tfp_glow.data.quantization: reduce_bits, dequantize, to_uint8, against numpy bit shifts.

Expected values come from independent references: scikit-learn's raw digits,
numpy bit shifts, PIL-written files, geometric properties of the toy sets.
"""
import numpy as np
import pytest
import tensorflow as tf

from tfp_glow import data as D


ALL_LEVELS = np.arange(256, dtype=np.uint8).reshape(4, 8, 8, 1)


@pytest.mark.parametrize("n_bits", range(1, 9))
def test_reduce_bits_exact(n_bits):
    got = D.reduce_bits(tf.constant(ALL_LEVELS), n_bits)
    assert got.dtype == tf.float32
    np.testing.assert_array_equal(got.numpy(), (ALL_LEVELS >> (8 - n_bits)).astype(np.float32))


def test_bad_n_bits():
    for bad in (0, 9, 2.0, True, None):
        for fn in (D.reduce_bits, D.dequantize, D.to_uint8):
            with pytest.raises(ValueError, match="n_bits"):
                fn(tf.zeros([1, 1]), bad)


def test_dequantize_range_bins_and_noise_statistics():
    n_bits = 5
    levels = np.random.default_rng(7).integers(0, 32, size=(64, 8, 8, 3)).astype(np.float32)
    y = D.dequantize(tf.constant(levels), n_bits).numpy()
    assert y.dtype == np.float32 and y.shape == levels.shape
    assert y.min() >= -0.5 and y.max() < 0.5
    u = (y.astype(np.float64) + 0.5) * 32 - levels  # recovered noise
    assert u.min() >= 0.0 and u.max() < 1.0  # every value lies in its own bin
    assert abs(u.mean() - 0.5) < 0.015  # U[0, 1): mean 1/2, var 1/12
    assert abs(u.var() - 1 / 12) < 0.01
    assert abs(y.mean()) < 0.01  # uniform levels + noise -> mean ~0


def test_dequantize_extreme_noise_stays_in_bin():
    n_bits = 8
    x = tf.constant(np.arange(256, dtype=np.float32))
    below_one = np.nextafter(np.float32(1), np.float32(0))
    hi = D.dequantize(x, n_bits, noise=tf.fill([256], below_one)).numpy()
    lo = D.dequantize(x, n_bits, noise=tf.zeros([256])).numpy()
    assert hi.max() < 0.5 and lo.min() == -0.5
    np.testing.assert_array_equal(lo, np.arange(256) / 256 - 0.5)
    np.testing.assert_array_equal(np.floor((hi.astype(np.float64) + 0.5) * 256), np.arange(256))
    np.testing.assert_array_equal(D.to_uint8(hi, n_bits).numpy(), np.arange(256))
    np.testing.assert_array_equal(D.to_uint8(lo, n_bits).numpy(), np.arange(256))


def test_dequantize_stateless_seed_repeatable():
    x = tf.zeros([3, 4, 4, 1])
    a = D.dequantize(x, 4, seed=tf.constant([1, 2]))
    b = D.dequantize(x, 4, seed=[1, 2])
    c = D.dequantize(x, 4, seed=tf.constant([1, 3]))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), c.numpy())
    with pytest.raises(ValueError, match=r"shape \[2\]"):
        D.dequantize(x, 4, seed=tf.constant([1, 2, 3]))
    with pytest.raises(ValueError, match="not both"):
        D.dequantize(x, 4, seed=[1, 2], noise=tf.zeros([3, 4, 4, 1]))
    with pytest.raises(ValueError, match="noise must have the shape"):
        D.dequantize(x, 4, noise=tf.zeros([3, 4]))


@pytest.mark.parametrize("n_bits", range(1, 9))
def test_round_trip_recovers_reduced_levels(n_bits):
    x = tf.constant(ALL_LEVELS)
    y = D.to_uint8(D.dequantize(D.reduce_bits(x, n_bits), n_bits, seed=[0, n_bits]), n_bits)
    assert y.dtype == tf.uint8
    q = (ALL_LEVELS >> (8 - n_bits)).astype(np.float64)
    expected = np.round(q * 255 / (2 ** n_bits - 1)).astype(np.uint8)
    np.testing.assert_array_equal(y.numpy(), expected)
    if n_bits == 8:
        np.testing.assert_array_equal(y.numpy(), ALL_LEVELS)


def test_pixel_helpers_under_xla_with_unknown_batch():
    n_bits = 3

    @tf.function(jit_compile=True, input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.uint8)])
    def roundtrip(x):
        seeded = D.dequantize(D.reduce_bits(x, n_bits), n_bits, seed=tf.constant([5, 6]))
        unseeded = D.dequantize(D.reduce_bits(x, n_bits), n_bits)
        return D.to_uint8(seeded, n_bits), D.to_uint8(unseeded, n_bits), seeded

    q = (ALL_LEVELS >> (8 - n_bits)).astype(np.float64)
    expected = np.round(q * 255 / 7).astype(np.uint8)
    for batch in (1, 4):
        a, b, s = roundtrip(tf.constant(ALL_LEVELS[:batch]))
        np.testing.assert_array_equal(a.numpy(), expected[:batch])
        np.testing.assert_array_equal(b.numpy(), expected[:batch])
        assert s.numpy().min() >= -0.5 and s.numpy().max() < 0.5
    s2 = roundtrip(tf.constant(ALL_LEVELS[:4]))[2]
    np.testing.assert_array_equal(s.numpy(), s2.numpy())  # stateless seed repeats under XLA


def test_to_uint8_handles_nan_inf_and_out_of_range():
    x = tf.constant([np.nan, np.inf, -np.inf, -3.0, 7.0, -0.5, 0.0, 0.49])

    @tf.function(jit_compile=True)
    def f(v):
        return D.to_uint8(v, 2)

    expected = np.array([0, 255, 0, 0, 255, 0, 170, 255], np.uint8)  # levels 0..3 -> *85
    np.testing.assert_array_equal(D.to_uint8(x, 2).numpy(), expected)
    np.testing.assert_array_equal(f(x).numpy(), expected)

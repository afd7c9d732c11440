"""tfp_glow.serving.checks: each run-time input check passes good input through unchanged and
fails bad input with a message naming the signature and what it expects."""
import numpy as np
import pytest
import tensorflow as tf

from tfp_glow.serving import checks


def _graph(fn, *specs):
    """`fn` traced with unknown shapes, as a loaded signature runs it."""
    return tf.function(fn, input_signature=list(specs), autograph=False)


def _fails(fn, *args):
    with pytest.raises(tf.errors.InvalidArgumentError) as e:
        fn(*args)
    return str(e.value)


def test_check_shape():
    fn = _graph(lambda t: checks.check_shape(t, "log_prob", "x", (8, 8, 1), " (note)"),
                tf.TensorSpec(None, tf.uint8))
    x = np.arange(2 * 64, dtype=np.uint8).reshape(2, 8, 8, 1)
    np.testing.assert_array_equal(fn(x), x)
    assert fn(np.zeros((0, 8, 8, 1), np.uint8)).shape == (0, 8, 8, 1)
    for bad in (np.zeros((2, 4, 4, 1), np.uint8), np.zeros((2, 8, 8), np.uint8), np.zeros((8, 8, 1, 1, 1), np.uint8)):
        err = _fails(fn, bad)
        assert "tfp_glow SavedModel, signature log_prob: expects x: uint8 [batch, 8, 8, 1] (note)" in err
        assert str(list(bad.shape)).replace(",", "") in err  # the received shape, as the Assert prints it
    assert checks.spec_text(tf.float32, (2,)) == "float32 [batch, 2]"


def test_check_labels():
    fn = _graph(lambda y, n: checks.check_labels(y, 10, "encode", n), tf.TensorSpec(None, tf.int32),
                tf.TensorSpec([], tf.int32))
    np.testing.assert_array_equal(fn(np.int32([0, 9, 3]), 3), [0, 9, 3])
    assert "labels must be in 0..9" in _fails(fn, np.int32([0, 10, 3]), 3)
    assert "labels must be in 0..9" in _fails(fn, np.int32([-1, 1, 3]), 3)
    assert "one label per example" in _fails(fn, np.int32([0, 1]), 3)
    assert "expects label: int32 [batch]; received rank" in _fails(fn, np.int32([[0, 1, 2]]), 3)


def test_check_rows_and_temperature():
    rows = _graph(lambda t, s: checks.check_rows("sample", tf.size(t), temperature=t, seed=s),
                  tf.TensorSpec(None, tf.float32), tf.TensorSpec(None, tf.int32))
    t, s = rows(np.float32([0.5, 1.0]), np.int32([3, 4]))
    np.testing.assert_array_equal(t, [0.5, 1.0])
    np.testing.assert_array_equal(s, [3, 4])
    err = _fails(rows, np.float32([0.5, 1.0]), np.int32([3]))
    assert "signature sample: expects temperature [batch] and seed [batch] of one length" in err
    assert "expects temperature [batch]" in _fails(rows, np.float32([[0.5, 1.0]]), np.int32([3, 4]))
    temp = _graph(lambda t: checks.check_temperature(t, "sample_n"), tf.TensorSpec(None, tf.float32))
    assert float(temp(np.float32(0.0))) == 0.0
    for bad in (np.float32([1.0, -0.5]), np.float32(np.nan), np.float32(np.inf)):
        assert "signature sample_n: expects temperature >= 0 (finite)" in _fails(temp, bad)


def test_decode_images():
    fn = _graph(lambda b: checks.decode_images(b, "log_prob_image", (4, 4, 1)), tf.TensorSpec([None], tf.string))
    grey = np.arange(16, dtype=np.uint8).reshape(4, 4, 1)
    rgb = np.repeat(grey, 3, axis=-1)
    got = fn(tf.stack([tf.io.encode_png(grey), tf.io.encode_png(rgb)])).numpy()
    np.testing.assert_array_equal(got[0], grey)
    np.testing.assert_array_equal(got[1], tf.image.rgb_to_grayscale(rgb).numpy())  # TF's own conversion
    err = _fails(fn, tf.stack([tf.io.encode_png(grey), tf.io.encode_png(np.zeros((5, 4, 1), np.uint8))]))
    assert "signature log_prob_image: expects image_bytes: encoded PNG/JPEG/GIF/BMP images of 4x4 pixels" in err
    assert "[5 4 1]" in err

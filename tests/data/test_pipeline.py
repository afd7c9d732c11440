"""tfp_glow.data.pipeline: make_dataset, the batched tf.data input pipeline.

Expected values come from independent references: scikit-learn's raw digits,
numpy bit shifts, PIL-written files, geometric properties of the toy sets.
"""
import numpy as np
import pytest
import tensorflow as tf

from tfp_glow import data as D


def _batches(ds):
    return [b.numpy() for b in ds]


def test_make_dataset_batching_in_order():
    x = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    ds = D.make_dataset(x, 4, shuffle=False)
    assert "Prefetch" in type(ds).__name__
    assert ds.element_spec == tf.TensorSpec((None, 3), tf.float32)
    batches = _batches(ds)
    assert [len(b) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(batches), x)

    ds = D.make_dataset(x, 4, shuffle=False, drop_remainder=True)
    assert ds.element_spec.shape.as_list() == [4, 3]
    assert [len(b) for b in _batches(ds)] == [4, 4]


def test_make_dataset_shuffle_is_a_seeded_permutation():
    x = np.arange(50, dtype=np.int64)
    e1 = np.concatenate(_batches(D.make_dataset(x, 8, seed=3)))
    e2 = np.concatenate(_batches(D.make_dataset(x, 8, seed=3)))
    np.testing.assert_array_equal(np.sort(e1), x)
    np.testing.assert_array_equal(e1, e2)
    assert not np.array_equal(e1, x)


def test_make_dataset_repeat_float64_and_uint8():
    x = np.arange(10, dtype=np.float64)
    ds = D.make_dataset(x, 4, repeat=True, drop_remainder=True)
    assert ds.element_spec == tf.TensorSpec((4,), tf.float32)
    got = np.concatenate(_batches(ds.take(5)))
    assert got.shape == (20,)
    np.testing.assert_array_equal(np.sort(got[:10]), x)  # first epoch is complete
    img = np.zeros((3, 2, 2, 1), np.uint8)
    assert D.make_dataset(img, 2).element_spec.dtype == tf.uint8


def test_make_dataset_from_tf_data():
    base = tf.data.Dataset.range(7).filter(lambda v: v >= 0)  # unknown cardinality
    assert int(base.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    ds = D.make_dataset(base, 3, shuffle=True, seed=1)
    assert "Prefetch" in type(ds).__name__
    out = _batches(ds)
    assert [len(b) for b in out] == [3, 3, 1]
    np.testing.assert_array_equal(np.sort(np.concatenate(out)), np.arange(7))
    # cached pipeline can be iterated twice
    np.testing.assert_array_equal(np.sort(np.concatenate(_batches(ds))), np.arange(7))


def test_make_dataset_empty_and_bad_arguments():
    with pytest.raises(ValueError, match="dataset is empty"):
        D.make_dataset(np.zeros((0, 2), np.float32), 4)
    with pytest.raises(ValueError, match="dataset is empty"):
        D.make_dataset(tf.data.Dataset.range(0), 4)
    with pytest.raises(ValueError, match="dataset is empty"):
        D.make_dataset(tf.data.Dataset.range(5).filter(lambda v: v > 10), 4)
    for bad in (0, -1, 2.5, True, "4"):
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            D.make_dataset(np.zeros((4, 2)), bad)
    with pytest.raises(ValueError, match="batch_size 8 exceeds the 5"):
        D.make_dataset(np.zeros((5, 2)), 8, drop_remainder=True)

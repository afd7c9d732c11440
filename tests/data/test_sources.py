"""tfp_glow.data.sources: the offline digits, digits28 and photos32, get_source, the package's names.

Expected values come from independent references: scikit-learn's raw digits,
numpy bit shifts, PIL-written files, geometric properties of the toy sets.
"""
import ast
import pathlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from sklearn import datasets as sk_datasets

from tfp_glow import data as D


def _digits_reference():
    """All 1797 digits mapped with a Python-level lookup table (independent of D)."""
    raw = sk_datasets.load_digits().images
    assert raw.shape == (1797, 8, 8)
    table = np.array([int(v * 255 / 16 + 0.5) for v in range(17)], dtype=np.uint8)
    return table[raw.astype(np.int64)][..., None]


def _rows(x):
    """Sorted rows of flattened images, to compare multisets of examples."""
    flat = x.reshape(len(x), -1)
    return flat[np.lexsort(flat.T[::-1])]


def test_digits_split_sizes_shape_dtype():
    sizes = {"train": 1293, "validation": 144, "test": 360, "train+validation": 1437}
    for split, n in sizes.items():
        x = D.load_digits(split)
        assert x.shape == (n, 8, 8, 1), split
        assert x.dtype == np.uint8


def test_digits_follow_documented_permutation_and_value_mapping():
    ref = _digits_reference()
    perm = np.random.default_rng(0).permutation(1797)
    np.testing.assert_array_equal(D.load_digits("test"), ref[perm[-360:]])
    np.testing.assert_array_equal(D.load_digits("train"), ref[perm[:1293]])
    np.testing.assert_array_equal(D.load_digits("validation"), ref[perm[1293:1437]])
    np.testing.assert_array_equal(D.load_digits("train+validation"), ref[perm[:1437]])


def test_digits_value_mapping_endpoints():
    raw = sk_datasets.load_digits().images
    x = np.concatenate([D.load_digits(s) for s in ("train", "validation", "test")])
    ref_idx = np.random.default_rng(0).permutation(1797)
    raw = raw[ref_idx][..., None]
    assert np.all(x[raw == 0] == 0)
    assert np.all(x[raw == 16] == 255)
    assert np.all(x[raw == 8] == 128)  # 127.5 rounds up
    assert np.all(x[raw == 1] == 16)  # 15.94
    assert len(np.unique(x)) == 17


def test_digits_splits_partition_the_data_and_are_deterministic():
    train, val, test = (D.load_digits(s) for s in ("train", "validation", "test"))
    # Together they are exactly the 1797 digits (as a multiset).
    np.testing.assert_array_equal(
        _rows(np.concatenate([train, val, test])), _rows(_digits_reference())
    )
    np.testing.assert_array_equal(
        D.load_digits("train+validation"), np.concatenate([train, val])
    )
    np.testing.assert_array_equal(D.load_digits("train"), train)
    np.testing.assert_array_equal(D.load_digits("test"), test)


def test_digits_unknown_split():
    with pytest.raises(ValueError, match="unknown split 'valid'.*'validation'"):
        D.load_digits("valid")


def test_get_source_builtin_sources():
    x, info = D.get_source("digits", "test")
    np.testing.assert_array_equal(x, D.load_digits("test"))
    assert info == D.DataInfo("image", (8, 8, 1), 8, 360)

    train, info = D.get_source("moons", "train")
    np.testing.assert_array_equal(train, D.toy_2d("moons", seed=0))
    assert (info.kind, info.shape, info.n_bits_native) == ("vector", (2,), None)
    test, _ = D.get_source("moons", "test")
    assert test.shape == train.shape and not np.array_equal(test, train)
    val, _ = D.get_source("moons", "validation")
    both, _ = D.get_source("moons", "train+validation")
    np.testing.assert_array_equal(both, np.concatenate([train, val]))
    with pytest.raises(ValueError, match="unknown split"):
        D.get_source("moons", "holdout")


def test_get_source_tfds_names():
    with tfds.testing.mock_data(num_examples=3):
        for name in ("mnist", "tfds:mnist"):
            ds, info = D.get_source(name, "train")
            assert isinstance(ds, tf.data.Dataset)
            assert info == D.DataInfo("image", (28, 28, 1), 8, 3)
            assert len(list(ds)) == 3


def test_get_source_unknown_name():
    with pytest.raises(ValueError, match=r"unknown data source 'imagenet_zz'.*digits.*moons.*\.npz.*tfds:NAME"):
        D.get_source("imagenet_zz", "train")


def test_digits28_is_the_digits_upsampled():
    from tfp_glow import data as data_lib

    x8 = data_lib.load_digits("test").astype(np.float64)
    x28 = data_lib.load_digits28("test")
    assert x28.shape == (360, 28, 28, 1) and x28.dtype == np.uint8
    # an independent bilinear reference (half-pixel centres, edge clamp) in numpy
    pos = (np.arange(28) + 0.5) * 8 / 28 - 0.5
    lo = np.clip(np.floor(pos).astype(int), 0, 7)
    hi = np.clip(lo + 1, 0, 7)
    w = np.clip(pos - np.floor(pos), 0, 1)
    w[pos < 0] = 0.0
    rows = x8[:, lo] * (1 - w)[None, :, None, None] + x8[:, hi] * w[None, :, None, None]
    ref = rows[:, :, lo] * (1 - w)[None, None, :, None] + rows[:, :, hi] * w[None, None, :, None]
    assert np.abs(x28.astype(np.float64) - ref).max() <= 1.0  # rounding only
    assert len(data_lib.load_digits28("train")) == 1293


def test_photos32_crops_disjoint_bands_deterministically():
    from tfp_glow import data as data_lib

    test = data_lib.load_photos32("test")
    assert test.shape == (1000, 32, 32, 3) and test.dtype == np.uint8
    np.testing.assert_array_equal(test, data_lib.load_photos32("test"))  # fixed seeds
    train = data_lib.load_photos32("train", n=400)
    assert train.shape == (400, 32, 32, 3)
    # real photographs: varied patches, colour, not constant
    assert test.reshape(1000, -1).std(axis=1).mean() > 5 and np.ptp(test) > 200
    assert np.abs(test[..., 0].astype(int) - test[..., 2]).mean() > 5
    # no test crop is a training crop
    train_keys = {t.tobytes() for t in train}
    assert not any(t.tobytes() in train_keys for t in test)
    x, info = data_lib.get_source("photos32", "validation")
    assert info.shape == (32, 32, 3) and len(x) == 500
    with pytest.raises(ValueError, match="n must be a positive int"):
        data_lib.load_photos32("train", n=0)


def test_data_package_reexports_its_names_and_imports_no_other_tfp_glow_module():
    for name in D.__all__:
        value = getattr(D, name)
        assert name.isupper() or value.__module__.startswith("tfp_glow.data."), name
    for path in pathlib.Path(D.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            else:
                continue
            for module in modules:  # data sits below bijectors/models/training: it imports none of them
                # (tfp_glow.extras, the standard-library helper for optional packages, sits below everything)
                assert (module.split(".")[0] != "tfp_glow" or module.startswith("tfp_glow.data.")
                        or module == "tfp_glow.extras"), (path.name, module)

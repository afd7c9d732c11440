"""Tests for tfp_glow.data: sources, validation, pipelines and pixel helpers.

Expected values come from independent references: scikit-learn's raw digits,
numpy bit shifts, PIL-written files, geometric properties of the toy sets.
"""

import ast
import pathlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image
from sklearn import datasets as sk_datasets

from tfp_glow import data as D


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------

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


def _batches(ds):
    return [b.numpy() for b in ds]


# ----------------------------------------------------------------------------
# digits
# ----------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------
# toy 2-D sets
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["moons", "circles", "checkerboard", "rings", "8gaussians"])
def test_toy_shape_determinism_finiteness(name):
    a = D.toy_2d(name, n=1000, seed=0)
    b = D.toy_2d(name, n=1000, seed=0)
    c = D.toy_2d(name, n=1000, seed=1)
    assert a.shape == (1000, 2) and a.dtype == np.float32
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # roughly within [-4, 4]^2, and not degenerate
    assert np.mean(np.abs(a) <= 4.0) > 0.99
    assert np.abs(a).max() < 5.0
    assert a.std(axis=0).min() > 0.5
    assert D.toy_2d(name, n=7).shape == (7, 2)


def test_toy_checkerboard_only_black_squares():
    x = D.toy_2d("checkerboard", n=2000).astype(np.float64)
    assert x.min() >= -4.0 and x.max() < 4.0
    cells = np.floor(x[:, 0] / 2) + np.floor(x[:, 1] / 2)
    assert np.all(cells % 2 == 0)
    # all 8 black squares are populated
    assert len({(int(a), int(b)) for a, b in np.floor(x / 2)}) == 8


def test_toy_circles_and_rings_radii():
    r = np.linalg.norm(D.toy_2d("circles", n=2000), axis=1)
    near = np.minimum(np.abs(r - 3.0), np.abs(r - 1.5))
    assert np.mean(near < 0.75) > 0.99
    assert 0.4 < np.mean(r > 2.25) < 0.6  # half on each circle

    r = np.linalg.norm(D.toy_2d("rings", n=2000), axis=1)
    radii = np.array([3.0, 2.25, 1.5, 0.75])
    assert np.mean(np.min(np.abs(r[:, None] - radii), axis=1) < 0.3) > 0.99
    counts = np.bincount(np.argmin(np.abs(r[:, None] - radii), axis=1), minlength=4)
    assert counts.min() > 400


def test_toy_8gaussians_near_centres():
    x = D.toy_2d("8gaussians", n=2000)
    ang = np.arange(8) * np.pi / 4
    centres = 4.0 / 1.414 * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    d = np.linalg.norm(x[:, None, :] - centres[None], axis=2)
    assert np.mean(d.min(axis=1) < 1.5) > 0.99
    assert np.bincount(d.argmin(axis=1), minlength=8).min() > 150


def test_toy_moons_near_arcs():
    x = D.toy_2d("moons", n=2000)
    t = np.linspace(0, np.pi, 400)
    upper = np.stack([np.cos(t), np.sin(t)], 1) * 2 + [-1, -0.2]
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1) * 2 + [-1, -0.2]
    curve = np.concatenate([upper, lower])
    dist = np.linalg.norm(x[:, None, :] - curve[None], axis=2).min(axis=1)
    assert np.median(dist) < 0.3
    assert np.mean(dist < 0.8) > 0.99


def test_toy_bad_inputs():
    with pytest.raises(ValueError, match="unknown toy data set 'spiral'.*8gaussians"):
        D.toy_2d("spiral")
    for bad_n in (0, -5, 2.5):
        with pytest.raises(ValueError, match="n must be a positive int"):
            D.toy_2d("moons", n=bad_n)


# ----------------------------------------------------------------------------
# npz
# ----------------------------------------------------------------------------

def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(5, 6, 7, 3), dtype=np.uint8)
    p = tmp_path / "imgs.npz"
    np.savez(p, x=x, other=x[:2])
    y = D.load_npz(p)
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(D.load_npz(str(p), key="other"), x[:2])


def test_npz_rank3_gets_channel_axis_and_int_dtype_is_cast(tmp_path):
    x = np.random.default_rng(2).integers(0, 256, size=(4, 5, 6)).astype(np.int64)
    p = tmp_path / "gray.npz"
    np.savez(p, x=x)
    y = D.load_npz(p)
    assert y.shape == (4, 5, 6, 1) and y.dtype == np.uint8
    np.testing.assert_array_equal(y[..., 0].astype(np.int64), x)


def test_npz_missing_file_and_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        D.load_npz(tmp_path / "nope.npz")
    p = tmp_path / "k.npz"
    np.savez(p, images=np.zeros((1, 2, 2, 1), np.uint8))
    with pytest.raises(ValueError, match=r"key 'x' not found.*\['images'\]"):
        D.load_npz(p)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.full((2, 3, 3, 1), 0.5, np.float32), "integer dtype.*float32"),
        (np.full((2, 3, 3, 1), 7.0), "integer dtype.*float64"),
        (np.array([[[[np.nan]]]], np.float32), "NaN"),
        (np.array([-3, 0, 300, 5]).reshape(1, 2, 2, 1), r"\[0, 255\]; got min -3, max 300"),
        (np.zeros((4, 4), np.uint8), "rank 2"),
        (np.zeros((1, 2, 2, 1, 1), np.uint8), "rank 5"),
        (np.zeros((0, 3, 3, 1), np.uint8), "empty"),
        (np.zeros((2, 3, 3, 1), bool), "integer dtype.*bool"),
    ],
)
def test_npz_bad_inputs(tmp_path, array, message):
    p = tmp_path / "bad.npz"
    np.savez(p, x=array)
    with pytest.raises(ValueError, match=message):
        D.load_npz(p)


# ----------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------

def test_validate_images():
    x = np.arange(24).reshape(1, 2, 3, 4)
    out = D.validate_images(x)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(D.validate_images(x.astype(np.float64)), x)  # whole floats ok
    with pytest.raises(ValueError, match=r"pixel values must lie in \[0, 255\]; got min -3, max 300"):
        D.validate_images(np.array([-3, 300]).reshape(1, 1, 2, 1))
    with pytest.raises(ValueError, match="rank 4.*rank 3"):
        D.validate_images(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        D.validate_images(np.zeros((0, 2, 2, 1), np.uint8))
    with pytest.raises(ValueError, match="finite"):
        D.validate_images(np.array([np.inf]).reshape(1, 1, 1, 1))
    with pytest.raises(ValueError, match="whole-number.*0.5"):
        D.validate_images(np.full((1, 1, 1, 1), 0.5))
    with pytest.raises(ValueError, match="numeric"):
        D.validate_images(np.array(["a"]).reshape(1, 1, 1, 1))


def test_validate_vectors():
    x = np.arange(6, dtype=np.float64).reshape(3, 2)
    out = D.validate_vectors(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x)
    with pytest.raises(ValueError, match=r"rank 2.*rank 1 with shape \(3,\)"):
        D.validate_vectors(np.zeros(3))
    with pytest.raises(ValueError, match="empty"):
        D.validate_vectors(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="finite.*1 NaN"):
        D.validate_vectors(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="finite"):
        D.validate_vectors(np.array([[1e300]]))  # overflows float32


# ----------------------------------------------------------------------------
# image folders
# ----------------------------------------------------------------------------

def _write(path, arr):
    Image.fromarray(arr).save(path)


def test_image_folder_reads_sorted_exact_rgb(tmp_path):
    rng = np.random.default_rng(3)
    imgs = {n: rng.integers(0, 256, (5, 4, 3), dtype=np.uint8) for n in ("b.png", "a.png", "c.bmp")}
    for n, a in imgs.items():
        _write(tmp_path / n, a)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub" / "z.png", imgs["a.png"])  # sub-folders are ignored
    x = D.load_image_folder(tmp_path)
    assert x.shape == (3, 5, 4, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(x, np.stack([imgs["a.png"], imgs["b.png"], imgs["c.bmp"]]))


def test_image_folder_grayscale(tmp_path):
    rng = np.random.default_rng(4)
    g = rng.integers(0, 256, (2, 6, 5), dtype=np.uint8)
    for i, a in enumerate(g):
        _write(tmp_path / f"{i}.png", a)
    x = D.load_image_folder(tmp_path, grayscale=True)
    assert x.shape == (2, 6, 5, 1)
    np.testing.assert_array_equal(x[..., 0], g)
    # a grayscale file read as RGB repeats the channel
    np.testing.assert_array_equal(D.load_image_folder(tmp_path), np.repeat(g[..., None], 3, -1))


def test_image_folder_rgb_to_grayscale_uses_luma(tmp_path):
    rgb = np.random.default_rng(5).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    _write(tmp_path / "c.png", rgb)
    x = D.load_image_folder(tmp_path, grayscale=True)[0, ..., 0].astype(float)
    luma = rgb.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(x - luma).max() <= 1.0


def test_image_folder_size_mismatch_and_resize(tmp_path):
    _write(tmp_path / "a.png", np.full((4, 4, 3), 200, np.uint8))
    _write(tmp_path / "b.jpg", np.full((8, 6, 3), 10, np.uint8))
    with pytest.raises(ValueError, match=r"'a.png' is 4x4.*'b.jpg' is 8x6"):
        D.load_image_folder(tmp_path)
    x = D.load_image_folder(tmp_path, image_size=(3, 5))
    assert x.shape == (2, 3, 5, 3)
    assert np.all(x[0] == 200)  # resizing a constant image keeps it constant
    assert np.all(np.abs(x[1].astype(int) - 10) <= 2)  # jpeg is lossy
    with pytest.raises(ValueError, match="image_size"):
        D.load_image_folder(tmp_path, image_size=(0, 5))


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        D.load_image_folder(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="no image files"):
        D.load_image_folder(empty)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="could not read image.*broken.png"):
        D.load_image_folder(tmp_path)


# ----------------------------------------------------------------------------
# TFDS
# ----------------------------------------------------------------------------

def test_load_tfds_mnist_with_mock_data():
    with tfds.testing.mock_data(num_examples=6):
        ds = D.load_tfds("mnist", split="train")
        raw = np.stack([e["image"].numpy() for e in tfds.load("mnist", split="train")])
        got = np.stack([e.numpy() for e in ds])
    assert ds.element_spec == tf.TensorSpec((28, 28, 1), tf.uint8)
    assert got.shape == (6, 28, 28, 1)
    np.testing.assert_array_equal(got, raw)


def test_load_tfds_unknown_name():
    with pytest.raises(ValueError, match=r"no_such_dataset_xyz.*tfds.list_builders\(\)"):
        D.load_tfds("no_such_dataset_xyz")


def test_load_tfds_download_failure_is_a_clear_runtime_error(monkeypatch):
    def failing_load(*args, **kwargs):
        raise ConnectionError("Network is unreachable")

    monkeypatch.setattr(tfds, "load", failing_load)
    # the server answered the probe (tfp_glow.data.external.probe_network), then the download failed
    monkeypatch.setattr("tfp_glow.data.external.probe_network", lambda *a, **k: None)
    with pytest.raises(RuntimeError, match=r"could not load or download.*'mnist'.*Network is "
                                           r"unreachable.*digits.*--data path.npz") as info:
        D.load_tfds("mnist")
    assert isinstance(info.value.__cause__, ConnectionError)


def test_load_tfds_without_image_feature(monkeypatch):
    fake = tf.data.Dataset.from_tensor_slices({"text": ["a", "b"]})
    monkeypatch.setattr(tfds, "load", lambda *a, **k: fake)
    with pytest.raises(ValueError, match=r"no 'image' feature.*\['text'\]"):
        D.load_tfds("some_text_set")


# ----------------------------------------------------------------------------
# get_source
# ----------------------------------------------------------------------------

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


def test_get_source_npz_and_folder(tmp_path):
    rng = np.random.default_rng(6)
    x = rng.integers(0, 256, (4, 3, 3, 1), dtype=np.uint8)
    t = rng.integers(0, 256, (2, 3, 3, 1), dtype=np.uint8)
    p = tmp_path / "d.npz"
    np.savez(p, x=x)
    got, info = D.get_source(str(p), "train")
    np.testing.assert_array_equal(got, x)
    assert info == D.DataInfo("image", (3, 3, 1), 8, 4)
    with pytest.raises(ValueError, match="no 'test' split"):
        D.get_source(str(p), "test")
    p2 = tmp_path / "d2.npz"
    np.savez(p2, x=x, test=t)
    np.testing.assert_array_equal(D.get_source(str(p2), "test")[0], t)
    with pytest.raises(FileNotFoundError):
        D.get_source(str(tmp_path / "missing.npz"), "train")

    folder = tmp_path / "imgs"
    (folder / "test").mkdir(parents=True)
    _write(folder / "a.png", x[0, ..., 0])
    _write(folder / "test" / "b.png", t[0, ..., 0])
    got, info = D.get_source(str(folder), "train")
    assert info.kind == "image" and info.num_examples == 1
    np.testing.assert_array_equal(got[0, ..., 0], x[0, ..., 0])  # L file -> RGB repeats
    got_test, _ = D.get_source(str(folder), "test")
    np.testing.assert_array_equal(got_test[0, ..., 1], t[0, ..., 0])
    with pytest.raises(ValueError, match="no 'validation' split"):
        D.get_source(str(folder), "validation")


def test_get_source_unknown_name():
    with pytest.raises(ValueError, match=r"unknown data source 'imagenet_zz'.*digits.*moons.*\.npz.*tfds:NAME"):
        D.get_source("imagenet_zz", "train")


# ----------------------------------------------------------------------------
# make_dataset
# ----------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------
# pixel helpers
# ----------------------------------------------------------------------------

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

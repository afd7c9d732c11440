"""tfp_glow.data.external: .npz files, image folders (PIL-written files) and TensorFlow Datasets (tfds mock data).

Expected values come from independent references: scikit-learn's raw digits,
numpy bit shifts, PIL-written files, geometric properties of the toy sets.
"""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from tfp_glow import data as D


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

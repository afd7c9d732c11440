"""Data sources, tf.data pipelines and dequantization helpers for tfp_glow.

Conventions used throughout the package:

* images are channels-last ``uint8`` arrays of shape ``[N, H, W, C]``;
* vectors (e.g. the 2-D toy sets) are ``float32`` arrays of shape ``[N, D]``.

Sources (``load_digits``, ``toy_2d``, ``load_npz``, ``load_image_folder``)
return numpy arrays; ``load_tfds`` returns a ``tf.data.Dataset`` of single
``uint8`` images. ``get_source`` is the single dispatcher used by the CLI and
returns the data together with a :class:`DataInfo`.

The pixel helpers (``reduce_bits``, ``dequantize``, ``to_uint8``) are pure
TensorFlow ops: they work on batches whose size is only known at run time and
can be used inside ``tf.function(jit_compile=True)``.

Nothing in this module downloads anything, except ``tfds.load`` for users who
ask for a TensorFlow Datasets name and have internet access.
"""
from __future__ import annotations

import dataclasses
import difflib
import numbers
import os
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

__all__ = [
    "DataInfo",
    "DIGITS_SPLITS",
    "TOY_NAMES",
    "load_digits",
    "load_digits28",
    "load_photos32",
    "OFFLINE_IMAGE_NAMES",
    "toy_2d",
    "load_npz",
    "load_image_folder",
    "load_tfds",
    "get_source",
    "validate_images",
    "validate_vectors",
    "make_dataset",
    "reduce_bits",
    "dequantize",
    "to_uint8",
]

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

#: Splits understood by :func:`load_digits` (and by :func:`get_source` for the
#: built-in digits and toy sources).
DIGITS_SPLITS = ("train", "validation", "test", "train+validation")

_DIGITS_N = 1797
_DIGITS_N_TEST = 360
_DIGITS_N_VALIDATION = 144

#: Offline image sources that ship with a dependency (no download).
OFFLINE_IMAGE_NAMES = ("digits", "digits28", "photos32")

# photos32: examples per split, and the horizontal band of each photograph a split crops from,
# so that no test crop overlaps a training crop.
_PHOTOS_N = {"train": 6000, "validation": 500, "test": 1000}
_PHOTOS_BANDS = {"train": (0.0, 0.7), "validation": (0.7, 0.8), "test": (0.8, 1.0)}
_PHOTOS_SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}
_PHOTOS_CROP_SIZES = (32, 48, 64)

#: Names accepted by :func:`toy_2d`.
TOY_NAMES = ("moons", "circles", "checkerboard", "rings", "8gaussians")

# Seeds used by get_source for the toy sets, one per split, so that the
# validation/test samples are independent of the training sample.
_TOY_SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}

# Bare names that get_source forwards to TensorFlow Datasets.
_TFDS_SHORTCUTS = ("mnist", "cifar10")

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")

# Largest float32 strictly below 1 that still keeps (k + u) < k + 1 exactly for
# every integer |k| <= 128 (float32 spacing in [64, 128) is 2**-17). See
# `dequantize`.
_U_MAX = 1.0 - 2.0 ** -17


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What kind of data a source yields.

    Attributes:
      kind: ``"image"`` (uint8 ``[H, W, C]`` examples) or ``"vector"``
        (float32 ``[D]`` examples).
      shape: shape of one example, ``(H, W, C)`` or ``(D,)``. For TFDS
        datasets with variable image size some entries may be ``None``.
      n_bits_native: bits per channel of the stored data (8 for images,
        ``None`` for vectors).
      num_examples: number of examples if known (``None`` for TFDS datasets
        of unknown cardinality).
    """

    kind: str
    shape: Tuple[Optional[int], ...]
    n_bits_native: Optional[int]
    num_examples: Optional[int] = None


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _check_n_bits(n_bits) -> int:
    if not _is_int(n_bits):
        raise ValueError(
            f"n_bits must be a Python int in [1, 8]; got {n_bits!r} "
            f"of type {type(n_bits).__name__}"
        )
    n_bits = int(n_bits)
    if not 1 <= n_bits <= 8:
        raise ValueError(f"n_bits must lie in [1, 8]; got {n_bits}")
    return n_bits


def validate_images(x, name: str = "images") -> np.ndarray:
    """Checks an image array and returns it as ``uint8 [N, H, W, C]``.

    Requirements: rank 4 (``[N, H, W, C]``, channels last), ``N > 0`` and
    ``H, W, C > 0``, a real numeric dtype, all values finite, whole numbers
    and within ``[0, 255]``. Integer-valued float arrays are accepted and
    cast; images scaled to ``[0, 1]`` are rejected (multiply by 255 first).

    Args:
      x: array-like of shape ``[N, H, W, C]``.
      name: what to call the array in error messages.

    Returns:
      ``np.ndarray`` of dtype ``uint8`` and shape ``[N, H, W, C]`` (a view or
      copy of ``x``).

    Raises:
      ValueError: wrong rank, empty array, non-numeric dtype, NaN/inf,
        non-integer values, or values outside ``[0, 255]``; the message names
        the expected and the received shape/values.
    """
    x = np.asarray(x)
    if x.dtype == np.bool_ or not (
        np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    ):
        raise ValueError(
            f"{name} must be a numeric (integer or float) array; got dtype {x.dtype}"
        )
    if x.ndim != 4:
        raise ValueError(
            f"{name} must have rank 4 [N, H, W, C] (channels last); "
            f"got rank {x.ndim} with shape {x.shape}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: expected N > 0 examples, got shape {x.shape}")
    if min(x.shape[1:]) == 0:
        raise ValueError(f"{name} must have H, W, C > 0; got shape {x.shape}")
    if np.issubdtype(x.dtype, np.floating):
        finite = np.isfinite(x)
        if not finite.all():
            n_bad = int((~finite).sum())
            raise ValueError(
                f"{name} must be finite; got {n_bad} NaN/inf value(s) out of {x.size}"
            )
        if not (x == np.floor(x)).all():
            bad = x[x != np.floor(x)].flat[0]
            raise ValueError(
                f"{name} must hold whole-number pixel levels in [0, 255]; got "
                f"non-integer value {bad!r} (dtype {x.dtype}); images scaled to "
                "[0, 1] must be multiplied by 255 and rounded first"
            )
    lo, hi = x.min(), x.max()
    if lo < 0 or hi > 255:
        raise ValueError(
            f"{name}: pixel values must lie in [0, 255]; got min {_fmt(lo)}, max {_fmt(hi)}"
        )
    return x.astype(np.uint8, copy=False)


def validate_vectors(x, name: str = "vectors") -> np.ndarray:
    """Checks a vector data set and returns it as ``float32 [N, D]``.

    Requirements: rank 2 (``[N, D]``), ``N > 0``, ``D > 0``, a real numeric
    dtype and all values finite (checked in float32, so values that overflow
    float32 are rejected too).

    Args:
      x: array-like of shape ``[N, D]``.
      name: what to call the array in error messages.

    Returns:
      ``np.ndarray`` of dtype ``float32`` and shape ``[N, D]``.

    Raises:
      ValueError: wrong rank, empty array, non-numeric dtype or NaN/inf.
    """
    x = np.asarray(x)
    if x.dtype == np.bool_ or not (
        np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    ):
        raise ValueError(
            f"{name} must be a numeric (integer or float) array; got dtype {x.dtype}"
        )
    if x.ndim != 2:
        raise ValueError(
            f"{name} must have rank 2 [N, D]; got rank {x.ndim} with shape {x.shape}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: expected N > 0 examples, got shape {x.shape}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} must have D > 0 features; got shape {x.shape}")
    with np.errstate(over="ignore"):
        x = x.astype(np.float32, copy=False)
    finite = np.isfinite(x)
    if not finite.all():
        n_bad = int((~finite).sum())
        raise ValueError(
            f"{name} must be finite (in float32); got {n_bad} NaN/inf value(s) out of {x.size}"
        )
    return x


def _fmt(v) -> str:
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


# --------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------


def _check_split(split, allowed: Sequence[str]) -> str:
    if split not in allowed:
        raise ValueError(f"unknown split {split!r}; expected one of {list(allowed)}")
    return split


def load_digits(split: str = "train") -> np.ndarray:
    """scikit-learn's 8x8 handwritten digits as ``uint8 [N, 8, 8, 1]``.

    Pixel values ``v`` in ``0..16`` are mapped to ``round(v * 255 / 16)``
    (so 0 -> 0, 8 -> 128, 16 -> 255). The data ships with scikit-learn, so
    this works offline.

    Splits use the fixed permutation ``p = np.random.default_rng(0)
    .permutation(1797)`` and return the examples in that order:

    * ``"test"``: ``p[1437:]`` (the last 360 examples, 360 images);
    * ``"train"``: ``p[:1293]`` (1293 images);
    * ``"validation"``: ``p[1293:1437]`` (144 images);
    * ``"train+validation"``: ``p[:1437]`` (1437 images).

    Labels are not returned.

    Args:
      split: one of ``"train"``, ``"validation"``, ``"test"``,
        ``"train+validation"``.

    Returns:
      ``np.ndarray`` uint8 of shape ``[N, 8, 8, 1]``.

    Raises:
      ValueError: unknown split.
    """
    _check_split(split, DIGITS_SPLITS)
    from sklearn import datasets as sk_datasets  # imported lazily (slow import)

    images = sk_datasets.load_digits().images  # float64 [1797, 8, 8], 0..16
    if images.shape[0] != _DIGITS_N:  # pragma: no cover - guards sklearn changes
        raise RuntimeError(
            f"expected {_DIGITS_N} digits from scikit-learn, got {images.shape[0]}"
        )
    perm = np.random.default_rng(0).permutation(_DIGITS_N)
    n_trainval = _DIGITS_N - _DIGITS_N_TEST  # 1437
    n_train = n_trainval - _DIGITS_N_VALIDATION  # 1293
    index = {
        "train": perm[:n_train],
        "validation": perm[n_train:n_trainval],
        "test": perm[n_trainval:],
        "train+validation": perm[:n_trainval],
    }[split]
    x = np.floor(images[index] * (255.0 / 16.0) + 0.5)  # round half up (only 127.5 occurs)
    return x.astype(np.uint8)[..., None]


def load_digits28(split: str = "train") -> np.ndarray:
    """scikit-learn's digits bilinearly upsampled to 28x28: ``uint8 [N, 28, 28, 1]``.

    ``x28 = round(resize_bilinear(x8, [28, 28]))`` (``tf.image.resize``, half-pixel centres)
    of :func:`load_digits`' images, with the same fixed splits. MNIST-sized, offline: it
    exercises two- and three-level models and their near-constant backgrounds without a
    download.

    Args:
      split: one of ``DIGITS_SPLITS``.

    Returns:
      ``np.ndarray`` uint8 of shape ``[N, 28, 28, 1]``.
    """
    x8 = load_digits(split).astype(np.float32)
    x28 = tf.image.resize(x8, [28, 28], method="bilinear").numpy()
    return np.clip(np.floor(x28 + 0.5), 0, 255).astype(np.uint8)


def load_photos32(split: str = "train", n: Optional[int] = None) -> np.ndarray:
    """Random 32x32 RGB crops of scikit-learn's two sample photographs: ``uint8 [N, 32, 32, 3]``.

    Each crop takes a square of side ``s`` in ``{32, 48, 64}`` at a random position and
    resizes it to 32x32 (area averaging), from ``china.jpg`` or ``flower.jpg`` (427x640, they
    ship with scikit-learn). The splits crop from disjoint vertical bands of each photograph
    (train: the left 70% of the width, validation: the next 10%, test: the last 20%), with
    seeds 0, 1, 2, so no test pixel was seen in training. A CIFAR-sized colour set, offline.

    Args:
      split: ``"train"`` (6000), ``"validation"`` (500), ``"test"`` (1000) or
        ``"train+validation"``.
      n: number of crops instead of the split's default.

    Returns:
      ``np.ndarray`` uint8 of shape ``[N, 32, 32, 3]``.
    """
    _check_split(split, DIGITS_SPLITS)
    if split == "train+validation":
        return np.concatenate([load_photos32("train", n), load_photos32("validation")], axis=0)
    if n is not None and (not _is_int(n) or n <= 0):
        raise ValueError(f"n must be a positive int; got {n!r}")
    from sklearn import datasets as sk_datasets  # imported lazily (slow import)

    photos = sk_datasets.load_sample_images().images  # two uint8 [427, 640, 3]
    n = int(n or _PHOTOS_N[split])
    rng = np.random.default_rng(_PHOTOS_SPLIT_SEEDS[split])
    lo, hi = _PHOTOS_BANDS[split]
    crops = np.empty((n, 32, 32, 3), np.uint8)
    for i in range(n):
        img = photos[i % len(photos)]
        h, w, _ = img.shape
        x0, x1 = int(lo * w), int(hi * w)
        s = int(rng.choice([c for c in _PHOTOS_CROP_SIZES if c <= x1 - x0]))
        top = int(rng.integers(0, h - s + 1))
        left = int(rng.integers(x0, x1 - s + 1))
        patch = img[top:top + s, left:left + s].astype(np.float32)
        f = s // 32 if s % 32 == 0 else None
        if f:  # integer factor: exact block average
            patch = patch.reshape(32, f, 32, f, 3).mean(axis=(1, 3))
        else:
            patch = tf.image.resize(patch, [32, 32], method="area").numpy()
        crops[i] = np.clip(np.floor(patch + 0.5), 0, 255).astype(np.uint8)
    return crops


def toy_2d(name: str, n: int = 2000, seed: int = 0) -> np.ndarray:
    """2-D toy densities from the FFJORD / RealNVP experiments, ``float32 [n, 2]``.

    Samples (roughly within ``[-4, 4]^2``), following FFJORD's
    ``toy_data.py`` but with i.i.d. random angles instead of evenly spaced
    ones:

    * ``moons``: two interleaved half circles with N(0, 0.1^2) noise,
      scaled by 2 and shifted by ``(-1, -0.2)``;
    * ``circles``: two concentric circles of radius 3 and 1.5 (half the
      points each) with N(0, 0.24^2) noise per coordinate;
    * ``rings``: four concentric circles of radius 3, 2.25, 1.5, 0.75 with
      N(0, 0.08^2) noise;
    * ``8gaussians``: a mixture of 8 Gaussians centred at radius
      ``4 / 1.414`` at angles ``k * pi / 4``, std ``0.5 / 1.414``;
    * ``checkerboard``: uniform on the 8 "black" 2x2 squares of a 4x4
      checkerboard covering ``[-4, 4]^2`` (cells whose
      ``floor(x / 2) + floor(y / 2)`` is even).

    Args:
      name: one of ``TOY_NAMES``.
      n: number of samples, a positive int.
      seed: seed for ``np.random.default_rng``; equal seeds give identical
        samples.

    Returns:
      ``np.ndarray`` float32 of shape ``[n, 2]``, rows in random order.

    Raises:
      ValueError: unknown name (the message lists the known names) or
        ``n`` not a positive int.
    """
    if name not in TOY_NAMES:
        raise ValueError(f"unknown toy data set {name!r}; known names: {list(TOY_NAMES)}")
    if not _is_int(n) or n <= 0:
        raise ValueError(f"n must be a positive int; got {n!r}")
    n = int(n)
    rng = np.random.default_rng(seed)

    if name == "moons":
        n_outer = n // 2
        t = rng.uniform(0.0, np.pi, size=n)
        outer = np.stack([np.cos(t), np.sin(t)], axis=1)
        inner = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
        x = np.where((np.arange(n) < n_outer)[:, None], outer, inner)
        x = x + rng.normal(scale=0.1, size=x.shape)
        x = x * 2.0 + np.array([-1.0, -0.2])
    elif name == "circles":
        radius = np.where(np.arange(n) < n // 2, 1.0, 0.5)
        t = rng.uniform(0.0, 2.0 * np.pi, size=n)
        x = radius[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
        x = (x + rng.normal(scale=0.08, size=x.shape)) * 3.0
    elif name == "rings":
        radii = np.array([1.0, 0.75, 0.5, 0.25]) * 3.0
        radius = radii[np.arange(n) % 4]
        t = rng.uniform(0.0, 2.0 * np.pi, size=n)
        x = radius[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
        x = x + rng.normal(scale=0.08, size=x.shape)
    elif name == "8gaussians":
        angles = np.arange(8) * (np.pi / 4.0)
        centers = 4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        k = rng.integers(0, 8, size=n)
        x = (centers[k] + 0.5 * rng.normal(size=(n, 2))) / 1.414
    else:  # checkerboard
        x1 = rng.uniform(size=n) * 4.0 - 2.0
        x2 = rng.uniform(size=n) - rng.integers(0, 2, size=n) * 2.0
        x2 = x2 + np.floor(x1) % 2
        x = np.stack([x1, x2], axis=1) * 2.0
    x = x[rng.permutation(n)]
    return x.astype(np.float32)


def load_npz(path: Union[str, os.PathLike], key: str = "x") -> np.ndarray:
    """Loads images stored under ``key`` in a ``.npz`` file as ``uint8 [N, H, W, C]``.

    Accepted arrays have shape ``[N, H, W, C]`` or ``[N, H, W]`` (a channel
    axis is appended; a rank-3 array is always read as ``[N, H, W]``) and an
    integer dtype with values in ``[0, 255]``; they are cast to uint8. The
    file is read with ``allow_pickle=False``.

    Args:
      path: path to the ``.npz`` file.
      key: name of the array inside the file.

    Returns:
      ``np.ndarray`` uint8 of shape ``[N, H, W, C]``.

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: ``key`` missing (the message lists the keys present), a
        float/bool/non-numeric dtype, NaN, values outside ``[0, 255]``,
        rank other than 3 or 4, or ``N == 0``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"npz file not found: {path!r}")
    with np.load(path, allow_pickle=False) as npz:
        keys = list(npz.keys())
        if key not in keys:
            raise ValueError(f"key {key!r} not found in {path!r}; keys present: {keys}")
        x = npz[key]
    return _npz_array_to_images(x, f"array {key!r} in {path!r}")


def _npz_array_to_images(x: np.ndarray, what: str) -> np.ndarray:
    if x.ndim not in (3, 4):
        raise ValueError(
            f"{what} must have shape [N, H, W, C] or [N, H, W]; "
            f"got rank {x.ndim} with shape {x.shape}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{what} is empty: expected N > 0 examples, got shape {x.shape}")
    if np.issubdtype(x.dtype, np.floating):
        if np.isnan(x).any():
            raise ValueError(f"{what} contains NaN; expected integer pixel values in [0, 255]")
        raise ValueError(
            f"{what} must have an integer dtype (uint8 pixel levels in [0, 255]); "
            f"got dtype {x.dtype}"
        )
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(
            f"{what} must have an integer dtype (uint8 pixel levels in [0, 255]); "
            f"got dtype {x.dtype}"
        )
    if x.ndim == 3:
        x = x[..., None]
    return validate_images(x, name=what)


def load_image_folder(
    path: Union[str, os.PathLike],
    image_size: Optional[Tuple[int, int]] = None,
    grayscale: bool = False,
) -> np.ndarray:
    """Reads every image in a folder (sorted by file name) as ``uint8 [N, H, W, C]``.

    Files with extension ``.png``, ``.jpg``, ``.jpeg`` or ``.bmp`` (any case)
    directly inside ``path`` are read with PIL; other files and
    sub-directories are ignored. Images are converted to RGB (``C = 3``), or
    to 8-bit grayscale (``C = 1``, PIL's ``"L"`` mode) when ``grayscale`` is
    true; alpha channels are dropped.

    Args:
      path: directory containing the images.
      image_size: optional ``(H, W)``; when given every image is resized to
        it (bilinear). Otherwise all images must share one size.
      grayscale: read images as one-channel grayscale.

    Returns:
      ``np.ndarray`` uint8 of shape ``[N, H, W, C]`` with ``C`` 1 or 3.

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: ``path`` is not a directory, contains no image files, an
        image cannot be decoded, sizes differ (without ``image_size``), or
        ``image_size`` is not a pair of positive ints.
    """
    from PIL import Image  # imported lazily

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"image folder not found: {path!r}")
    if not os.path.isdir(path):
        raise ValueError(f"expected a directory of images; {path!r} is not a directory")
    if image_size is not None:
        if (
            not isinstance(image_size, (tuple, list))
            or len(image_size) != 2
            or not all(_is_int(s) and s > 0 for s in image_size)
        ):
            raise ValueError(f"image_size must be a pair of positive ints (H, W); got {image_size!r}")
        image_size = (int(image_size[0]), int(image_size[1]))

    files = sorted(
        f
        for f in os.listdir(path)
        if f.lower().endswith(_IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(path, f))
    )
    if not files:
        raise ValueError(
            f"no image files ({', '.join(_IMAGE_EXTENSIONS)}) found in folder {path!r}"
        )
    mode = "L" if grayscale else "RGB"
    arrays = []
    first_size = None
    for f in files:
        full = os.path.join(path, f)
        try:
            with Image.open(full) as img:
                img = img.convert(mode)
                if image_size is not None:
                    h, w = image_size
                    if img.size != (w, h):
                        img = img.resize((w, h), Image.Resampling.BILINEAR)
                arr = np.asarray(img, dtype=np.uint8)
        except (OSError, SyntaxError) as e:  # PIL raises these for bad files
            raise ValueError(f"could not read image {full!r}: {e}") from e
        if arr.ndim == 2:
            arr = arr[..., None]
        if first_size is None:
            first_size = (arr.shape[0], arr.shape[1], files[0])
        elif arr.shape[:2] != first_size[:2]:
            raise ValueError(
                f"all images must share one size (or pass image_size=(H, W)); "
                f"{first_size[2]!r} is {first_size[0]}x{first_size[1]} (HxW) but "
                f"{f!r} is {arr.shape[0]}x{arr.shape[1]}"
            )
        arrays.append(arr)
    return np.stack(arrays, axis=0)


def load_tfds(name: str, split: str = "train", data_dir: Optional[str] = None) -> tf.data.Dataset:
    """``tfds.load(name, split=split, data_dir=data_dir)`` mapped to its ``image`` feature.

    Only this function (and :func:`get_source` for TFDS names) may download
    data, through TensorFlow Datasets.

    Args:
      name: a TFDS builder name, e.g. ``"mnist"`` or ``"cifar10"``
        (optionally with a version/config, as accepted by ``tfds.load``).
      split: a TFDS split expression, e.g. ``"train"``, ``"test"`` or
        ``"train[:90%]"``.
      data_dir: TFDS data directory (``None`` for the TFDS default).

    Returns:
      ``tf.data.Dataset`` of single uint8 images of shape ``[H, W, C]``
      (a channel axis is added to rank-2 images).

    Raises:
      ValueError: ``name`` is not a TFDS dataset (see ``tfds.list_builders()``),
        or it has no integer ``image`` feature.
      RuntimeError: the dataset could not be loaded or downloaded (e.g. no
        internet); the original error is chained and quoted.
    """
    import tensorflow_datasets as tfds  # imported lazily (slow import)

    try:
        ds = tfds.load(name, split=split, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        base = name.split("/")[0].split(":")[0]
        try:
            close = difflib.get_close_matches(base, tfds.list_builders(), n=3)
        except Exception:  # pragma: no cover - suggestions are best effort
            close = []
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(
            f"unknown TFDS dataset {name!r}; see tfds.list_builders() for the "
            f"available names.{hint}"
        ) from e
    except Exception as e:
        raise RuntimeError(
            f"could not load or download TFDS dataset {name!r} (split {split!r}, "
            f"data_dir {data_dir!r}): {type(e).__name__}: {e}. Without internet "
            "access, use the offline 'digits' data or pass your own images with "
            "--data path.npz (or an image folder)."
        ) from e

    spec = ds.element_spec
    if not isinstance(spec, dict) or "image" not in spec:
        keys = list(spec.keys()) if isinstance(spec, dict) else type(spec).__name__
        raise ValueError(f"TFDS dataset {name!r} has no 'image' feature; its features are {keys}")
    image_spec = spec["image"]
    if not image_spec.dtype.is_integer:
        raise ValueError(
            f"TFDS dataset {name!r} has image dtype {image_spec.dtype.name}; "
            "expected integer pixel levels (uint8)"
        )
    if image_spec.shape.rank not in (2, 3):
        raise ValueError(
            f"TFDS dataset {name!r} has image shape {image_spec.shape}; "
            "expected [H, W, C] or [H, W]"
        )
    add_channel = image_spec.shape.rank == 2

    def _image(example):
        img = tf.cast(example["image"], tf.uint8)
        return img[..., None] if add_channel else img

    return ds.map(_image, num_parallel_calls=tf.data.AUTOTUNE)


def _resolve_split_key(split: str, available: Sequence[str], source: str, kind: str):
    """Which npz key / sub-folder serves `split`; '+'-joined splits -> list."""
    if split in available:
        return [split]
    if "+" in split:
        parts = [p.strip() for p in split.split("+")]
        out = []
        for p in parts:
            out.extend(_resolve_split_key(p, available, source, kind))
        return out
    if split == "train":
        return [None]  # the default array / the folder itself
    raise ValueError(
        f"{source!r} has no {split!r} split: expected a {kind} named {split!r} "
        f"(found {list(available)}); only split 'train' falls back to the whole source"
    )


def get_source(name: str, split: str = "train", data_dir: Optional[str] = None):
    """Loads a data source by name: ``(data, DataInfo)``.

    ``name`` is resolved in this order:

    1. ``"digits"``, ``"digits28"``, ``"photos32"``: :func:`load_digits`,
       :func:`load_digits28`, :func:`load_photos32` (splits ``DIGITS_SPLITS``);
    2. a toy name (``TOY_NAMES``): :func:`toy_2d` with the default ``n`` and
       seed 0 / 1 / 2 for ``"train"`` / ``"validation"`` / ``"test"``
       (``"train+validation"`` concatenates the first two);
    3. ``"tfds:NAME"`` or one of ``"mnist"``, ``"cifar10"``:
       :func:`load_tfds` with ``split`` passed through unchanged;
    4. a path ending in ``.npz``: :func:`load_npz`; split ``S`` reads key
       ``S`` if the file has it, else split ``"train"`` reads key ``"x"``;
       ``"a+b"`` concatenates the arrays for ``a`` and ``b``;
    5. an existing directory: :func:`load_image_folder`; split ``S`` reads
       sub-folder ``S`` if it exists, else split ``"train"`` reads the folder
       itself; ``"a+b"`` concatenates.

    Any other split of a file/folder source raises instead of silently
    returning the training data.

    Args:
      name: source name or path, as above.
      split: split name.
      data_dir: TFDS data directory (TFDS sources only).

    Returns:
      ``(data, info)``: ``data`` is a numpy array (uint8 ``[N, H, W, C]`` for
      images, float32 ``[N, D]`` for vectors) or, for TFDS sources, a
      ``tf.data.Dataset`` of single uint8 images; ``info`` is a
      :class:`DataInfo`.

    Raises:
      ValueError: unknown name (the message lists what is accepted), unknown
        split, or invalid data (see the individual loaders).
      FileNotFoundError: a ``.npz`` path that does not exist.
      RuntimeError: a TFDS dataset could not be loaded/downloaded.
    """
    if not isinstance(name, (str, os.PathLike)):
        raise ValueError(f"data source name must be a string or path; got {name!r}")
    name = os.fspath(name)

    if name in OFFLINE_IMAGE_NAMES:
        loader = {"digits": load_digits, "digits28": load_digits28, "photos32": load_photos32}[name]
        x = loader(split)
        return x, DataInfo("image", tuple(x.shape[1:]), 8, int(x.shape[0]))

    if name in TOY_NAMES:
        if split == "train+validation":
            x = np.concatenate([toy_2d(name, seed=0), toy_2d(name, seed=1)], axis=0)
        elif split in _TOY_SPLIT_SEEDS:
            x = toy_2d(name, seed=_TOY_SPLIT_SEEDS[split])
        else:
            _check_split(split, DIGITS_SPLITS)
        return x, DataInfo("vector", tuple(x.shape[1:]), None, int(x.shape[0]))

    tfds_name = None
    if name.startswith("tfds:"):
        tfds_name = name[len("tfds:"):]
        if not tfds_name:
            raise ValueError("expected 'tfds:NAME' with a dataset name; got 'tfds:'")
    elif name in _TFDS_SHORTCUTS:
        tfds_name = name
    if tfds_name is not None:
        ds = load_tfds(tfds_name, split=split, data_dir=data_dir)
        card = int(ds.cardinality())
        num = card if card >= 0 else None
        shape = tuple(ds.element_spec.shape.as_list())
        return ds, DataInfo("image", shape, 8, num)

    if name.lower().endswith(".npz"):
        if not os.path.isfile(name):
            raise FileNotFoundError(f"npz file not found: {name!r}")
        with np.load(name, allow_pickle=False) as npz:
            keys = list(npz.keys())
        parts = []
        for key in _resolve_split_key(split, keys, name, "array"):
            parts.append(load_npz(name, key="x" if key is None else key))
        x = _concat_images(parts, name)
        return x, DataInfo("image", tuple(x.shape[1:]), 8, int(x.shape[0]))

    if os.path.isdir(name):
        subdirs = sorted(d for d in os.listdir(name) if os.path.isdir(os.path.join(name, d)))
        parts = []
        for sub in _resolve_split_key(split, subdirs, name, "sub-folder"):
            parts.append(load_image_folder(name if sub is None else os.path.join(name, sub)))
        x = _concat_images(parts, name)
        return x, DataInfo("image", tuple(x.shape[1:]), 8, int(x.shape[0]))

    raise ValueError(
        f"unknown data source {name!r}; expected one of {list(OFFLINE_IMAGE_NAMES)}, a toy set {list(TOY_NAMES)}, "
        f"a path to a .npz file, an existing image directory, one of "
        f"{list(_TFDS_SHORTCUTS)}, or 'tfds:NAME' for any TensorFlow Datasets name"
    )


def _concat_images(parts, source):
    if len(parts) == 1:
        return parts[0]
    shapes = {p.shape[1:] for p in parts}
    if len(shapes) != 1:
        raise ValueError(
            f"cannot concatenate splits of {source!r}: image shapes differ {sorted(shapes)}"
        )
    return np.concatenate(parts, axis=0)


# --------------------------------------------------------------------------
# Pipelines
# --------------------------------------------------------------------------


def make_dataset(
    x,
    batch_size: int,
    shuffle: bool = True,
    seed: Optional[int] = 0,
    repeat: bool = False,
    drop_remainder: bool = False,
    cache: bool = True,
    shuffle_buffer: Optional[int] = None,
) -> tf.data.Dataset:
    """Batched input pipeline: ``[cache] -> [shuffle] -> [repeat] -> batch -> prefetch``.

    Args:
      x: numpy array ``[N, ...]`` (e.g. uint8 ``[N, H, W, C]`` or float
        ``[N, D]``; float64 is cast to float32) or a ``tf.data.Dataset`` of
        single examples.
      batch_size: positive int.
      shuffle: shuffle examples (reshuffled every epoch).
      seed: shuffle seed (``None`` for a non-repeatable order).
      repeat: repeat forever (batches then span epoch boundaries).
      drop_remainder: drop the last, smaller batch; without it the batch
        dimension of ``element_spec`` is ``None``.
      cache: cache elements in memory after the first pass (applies to
        ``tf.data`` inputs; numpy inputs are already in memory).
      shuffle_buffer: shuffle buffer size; ``None`` uses the whole data set
        for numpy inputs and ``min(cardinality, 10000)`` (10000 if unknown)
        for ``tf.data`` inputs.

    Returns:
      ``tf.data.Dataset`` of batches of shape ``[batch, ...]``, ending in
      ``.prefetch(tf.data.AUTOTUNE)``.

    Raises:
      ValueError: empty input ("dataset is empty"), ``batch_size`` or
        ``shuffle_buffer`` not a positive int, or (for inputs of known size,
        without ``repeat``) ``drop_remainder=True`` with fewer examples than
        ``batch_size``.
    """
    if not _is_int(batch_size) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
    batch_size = int(batch_size)
    if shuffle_buffer is not None and (not _is_int(shuffle_buffer) or shuffle_buffer <= 0):
        raise ValueError(f"shuffle_buffer must be a positive int or None; got {shuffle_buffer!r}")

    if isinstance(x, tf.data.Dataset):
        ds = x
        card = int(ds.cardinality())
        if card == 0:
            raise ValueError("dataset is empty: the tf.data.Dataset has cardinality 0")
        if card == tf.data.UNKNOWN_CARDINALITY:
            if not any(True for _ in ds.take(1)):
                raise ValueError("dataset is empty: the tf.data.Dataset yielded no elements")
        n = card if card >= 0 else None  # None: unknown or infinite
        if cache:
            ds = ds.cache()
        buffer = shuffle_buffer or (min(n, 10_000) if n is not None else 10_000)
    else:
        x = np.asarray(x)
        if x.ndim == 0:
            raise ValueError(f"expected an array [N, ...] of examples; got a scalar {x!r}")
        if x.shape[0] == 0:
            raise ValueError(f"dataset is empty: got an array of shape {x.shape}")
        if x.dtype == np.float64:
            x = x.astype(np.float32)
        n = int(x.shape[0])
        ds = tf.data.Dataset.from_tensor_slices(x)
        buffer = shuffle_buffer or n

    if drop_remainder and not repeat and n is not None and n < batch_size:
        raise ValueError(
            f"batch_size {batch_size} exceeds the {n} available examples with "
            "drop_remainder=True; no batch would be produced"
        )
    if shuffle:
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------
# Pixel helpers (pure TF, XLA-compatible)
# --------------------------------------------------------------------------


def reduce_bits(x_uint8, n_bits: int) -> tf.Tensor:
    """``floor(x / 2**(8 - n_bits))`` as float32: 8-bit levels -> ``n_bits``-bit levels.

    Exact for integer inputs in ``[0, 255]`` (the division is by a power of
    two). Works on any shape, including batches of unknown size, and inside
    ``tf.function(jit_compile=True)``.

    Args:
      x_uint8: tensor of 8-bit pixel levels, any shape (e.g. uint8
        ``[B, H, W, C]``); other integer or integer-valued float dtypes are
        cast to float32.
      n_bits: Python int in ``[1, 8]``.

    Returns:
      float32 tensor of the same shape with integer values in
      ``[0, 2**n_bits - 1]``.

    Raises:
      ValueError: ``n_bits`` is not an int in ``[1, 8]``.
    """
    n_bits = _check_n_bits(n_bits)
    x = tf.cast(x_uint8, tf.float32)
    return tf.floor(x / float(2 ** (8 - n_bits)))


def dequantize(
    x_int,
    n_bits: int,
    seed=None,
    noise=None,
) -> tf.Tensor:
    """Uniform dequantization ``x = (x_int + u) / 2**n_bits - 0.5``, ``u ~ U[0, 1)``.

    ``u`` is drawn with ``tf.random.stateless_uniform(shape, seed)`` when a
    stateless ``seed`` is given (repeatable, e.g. for test-set figures), taken
    from ``noise`` when given, and otherwise drawn with
    ``tf.random.uniform``. The value is computed as
    ``((x_int - 2**(n_bits-1)) + u) / 2**n_bits`` with ``u`` clipped to
    ``[0, 1 - 2**-17]``: mathematically the same, but float32 rounding can
    then never push a value into the next bin, so
    ``to_uint8(dequantize(q, n), n)`` recovers the levels ``q`` exactly and
    the result is strictly below 0.5.

    The same stateless seed gives the same noise on every call in one
    execution mode; note that XLA (``jit_compile=True``) uses a different
    random kernel, so eager and XLA draws for one seed differ.

    Args:
      x_int: integer-valued tensor of levels in ``[0, 2**n_bits - 1]`` (e.g.
        the output of :func:`reduce_bits`), any shape, e.g. ``[B, H, W, C]``
        with unknown ``B``.
      n_bits: Python int in ``[1, 8]``.
      seed: optional shape-``[2]`` integer tensor/array, a stateless seed.
      noise: optional float tensor of ``u`` values in ``[0, 1)`` with the
        shape of ``x_int``.

    Returns:
      float32 tensor of the shape of ``x_int`` with values in
      ``[-0.5, 0.5)``.

    Raises:
      ValueError: bad ``n_bits``, both ``seed`` and ``noise`` given, a seed
        whose static shape is not ``[2]``, or ``noise`` whose static shape is
        incompatible with ``x_int``.
    """
    n_bits = _check_n_bits(n_bits)
    if seed is not None and noise is not None:
        raise ValueError("pass either seed or noise to dequantize, not both")
    x = tf.cast(x_int, tf.float32)
    shape = tf.shape(x)
    if noise is not None:
        u = tf.cast(noise, tf.float32)
        if not u.shape.is_compatible_with(x.shape):
            raise ValueError(
                f"noise must have the shape of x_int; expected {x.shape}, got {u.shape}"
            )
    elif seed is not None:
        seed = tf.convert_to_tensor(seed)
        if not seed.dtype.is_integer:
            raise ValueError(f"seed must be an integer tensor of shape [2]; got dtype {seed.dtype.name}")
        if not seed.shape.is_compatible_with([2]):
            raise ValueError(f"seed must have shape [2]; got shape {seed.shape}")
        u = tf.random.stateless_uniform(shape, seed=seed, dtype=tf.float32)
    else:
        u = tf.random.uniform(shape, dtype=tf.float32)
    u = tf.clip_by_value(u, 0.0, _U_MAX)
    half = float(2 ** (n_bits - 1))
    return ((x - half) + u) / float(2 ** n_bits)


def to_uint8(x, n_bits: int) -> tf.Tensor:
    """Inverse of dequantization for display: float in ``[-0.5, 0.5)`` -> uint8 ``0..255``.

    ``q = clip(floor((x + 0.5) * 2**n_bits), 0, 2**n_bits - 1)`` (computed
    exactly as ``floor(x * 2**n_bits) + 2**(n_bits - 1)``), then
    ``round(q * 255 / (2**n_bits - 1))``. NaN maps to 0, ``+inf`` to 255 and
    ``-inf`` to 0; nothing raises inside graph code.

    Args:
      x: float tensor of any shape, e.g. ``[B, H, W, C]`` with unknown ``B``.
      n_bits: Python int in ``[1, 8]``.

    Returns:
      uint8 tensor of the same shape.

    Raises:
      ValueError: ``n_bits`` is not an int in ``[1, 8]`` (raised while
        tracing, never from a running graph).
    """
    n_bits = _check_n_bits(n_bits)
    levels = float(2 ** n_bits)
    x = tf.cast(x, tf.float32)
    q = tf.floor(x * levels) + levels / 2.0
    q = tf.clip_by_value(q, 0.0, levels - 1.0)
    q = tf.where(tf.math.is_nan(x), tf.zeros_like(q), q)
    out = tf.round(q * (255.0 / (levels - 1.0)))
    return tf.cast(tf.clip_by_value(out, 0.0, 255.0), tf.uint8)

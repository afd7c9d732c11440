"""Data sources by name: the offline digits, digits28 and photos32 sets, and ``get_source``.

``load_digits``, ``load_digits28``, ``load_photos32`` and ``toy_2d`` return numpy arrays and need no
download: the 8x8 digits ship with this package (``files/digits.npz``, see ``files/README.md``),
the two photographs of ``photos32`` with scikit-learn (the ``photos`` extra). ``get_source`` is
the single dispatcher used by the CLI: it resolves a name to one of these, to a 2-D toy set
(``toy_2d`` and ``TOY_NAMES`` live in ``tfp_glow.data.toys`` and are re-exported here), to a
``.npz`` file, an image folder or a TensorFlow Datasets name (see ``tfp_glow.data.external``),
and returns the data together with a :class:`DataInfo`.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfp_glow.data.external import load_image_folder, load_npz, load_tfds, npz_keys
from tfp_glow.data.toys import TOY_NAMES, toy_2d
from tfp_glow.data.validation import _is_int
from tfp_glow.extras import require

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

#: Splits understood by :func:`load_digits` (and by :func:`get_source` for the
#: built-in digits and toy sources).
DIGITS_SPLITS = ("train", "validation", "test", "train+validation")

_DIGITS_N = 1797
_DIGITS_N_TEST = 360
_DIGITS_N_VALIDATION = 144
# UCI's optical recognition of handwritten digits (the copy scikit-learn ships as load_digits):
# `images` uint8 [1797, 8, 8] in 0..16, `target` uint8 [1797]. CC BY 4.0, see files/README.md.
DIGITS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "files", "digits.npz")

#: Offline image sources (no download): the digits ship with tfp_glow, photos32's photographs
#: with scikit-learn.
OFFLINE_IMAGE_NAMES = ("digits", "digits28", "photos32")

# photos32: examples per split, and the horizontal band of each photograph a split crops from,
# so that no test crop overlaps a training crop.
_PHOTOS_N = {"train": 6000, "validation": 500, "test": 1000}
_PHOTOS_BANDS = {"train": (0.0, 0.7), "validation": (0.7, 0.8), "test": (0.8, 1.0)}
_PHOTOS_SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}
_PHOTOS_CROP_SIZES = (32, 48, 64)

# Seeds used by get_source for the toy sets, one per split, so that the
# validation/test samples are independent of the training sample.
_TOY_SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}

# Bare names that get_source forwards to TensorFlow Datasets.
_TFDS_SHORTCUTS = ("mnist", "cifar10")


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


def _check_split(split, allowed: Sequence[str]) -> str:
    if split not in allowed:
        raise ValueError(f"unknown split {split!r}; expected one of {list(allowed)}")
    return split


def load_digits(split: str = "train") -> np.ndarray:
    """The 8x8 handwritten digits (UCI, as in scikit-learn's ``load_digits``) as ``uint8 [N, 8, 8, 1]``.

    Pixel values ``v`` in ``0..16`` are mapped to ``round(v * 255 / 16)``
    (so 0 -> 0, 8 -> 128, 16 -> 255). The 1797 images ship with this package
    (``DIGITS_FILE``, 45 KB), so this works offline and without scikit-learn;
    they are scikit-learn's ``load_digits().images``, byte for byte.

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
    with np.load(DIGITS_FILE, allow_pickle=False) as npz:
        images = npz["images"].astype(np.float64)  # [1797, 8, 8], 0..16, as scikit-learn's
    if images.shape != (_DIGITS_N, 8, 8):  # pragma: no cover - guards a damaged installation
        raise RuntimeError(f"{DIGITS_FILE} holds {images.shape} digits; expected ({_DIGITS_N}, 8, 8)")
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
    """The 8x8 digits (:func:`load_digits`) bilinearly upsampled to 28x28: ``uint8 [N, 28, 28, 1]``.

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
    ship with scikit-learn: ``pip install "tfp_glow[photos]"``). The splits crop from disjoint
    vertical bands of each photograph (train: the left 70% of the width, validation: the next
    10%, test: the last 20%), with seeds 0, 1, 2, so no test pixel was seen in training. A
    CIFAR-sized colour set, offline.

    Args:
      split: ``"train"`` (6000), ``"validation"`` (500), ``"test"`` (1000) or
        ``"train+validation"``.
      n: number of crops instead of the split's default.

    Returns:
      ``np.ndarray`` uint8 of shape ``[N, 32, 32, 3]``.

    Raises:
      MissingExtraError: scikit-learn (or pillow, which it reads the photographs with) is not
        installed.
    """
    _check_split(split, DIGITS_SPLITS)
    if split == "train+validation":
        return np.concatenate([load_photos32("train", n), load_photos32("validation")], axis=0)
    if n is not None and (not _is_int(n) or n <= 0):
        raise ValueError(f"n must be a positive int; got {n!r}")
    sk_datasets = require("sklearn.datasets", "photos", "the photos32 data")
    require("PIL", "photos", "the photos32 data (scikit-learn reads its sample photographs with it)")
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


def get_source(name: str, split: str = "train", data_dir: Optional[str] = None,
               image_size: Optional[Tuple[int, int]] = None, grayscale: bool = False):
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
      image_size, grayscale: for image folders only, as :func:`load_image_folder` takes them
        (the CLI's ``--image-size H W`` and ``--grayscale``).

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
    if (image_size is not None or grayscale) and not os.path.isdir(name):
        raise ValueError(f"image_size and grayscale apply to image folders only; {name!r} is not a directory")
    if name in OFFLINE_IMAGE_NAMES:
        return _image_info(_OFFLINE_LOADERS[name](split))
    if name in TOY_NAMES:
        return _toy_source(name, split)
    tfds_name = _tfds_name(name)
    if tfds_name is not None:
        return _tfds_source(tfds_name, split, data_dir)
    if name.lower().endswith(".npz"):
        return _npz_source(name, split)
    if os.path.isdir(name):
        return _folder_source(name, split, image_size, grayscale)
    raise ValueError(
        f"unknown data source {name!r}; expected one of {list(OFFLINE_IMAGE_NAMES)}, a toy set {list(TOY_NAMES)}, "
        f"a path to a .npz file, an existing image directory, one of "
        f"{list(_TFDS_SHORTCUTS)}, or 'tfds:NAME' for any TensorFlow Datasets name"
    )


_OFFLINE_LOADERS = {"digits": load_digits, "digits28": load_digits28, "photos32": load_photos32}


def _image_info(x):
    """``(x, DataInfo)`` of an image array ``uint8 [N, H, W, C]``."""
    return x, DataInfo("image", tuple(x.shape[1:]), 8, int(x.shape[0]))


def _toy_source(name, split):
    """A toy set's split: seeds 0 / 1 / 2 for train / validation / test."""
    if split == "train+validation":
        x = np.concatenate([toy_2d(name, seed=0), toy_2d(name, seed=1)], axis=0)
    elif split in _TOY_SPLIT_SEEDS:
        x = toy_2d(name, seed=_TOY_SPLIT_SEEDS[split])
    else:
        _check_split(split, DIGITS_SPLITS)
    return x, DataInfo("vector", tuple(x.shape[1:]), None, int(x.shape[0]))


def _tfds_name(name):
    """The TFDS name of ``"tfds:NAME"`` or a shortcut, else ``None``."""
    if name.startswith("tfds:"):
        if not name[len("tfds:"):]:
            raise ValueError("expected 'tfds:NAME' with a dataset name; got 'tfds:'")
        return name[len("tfds:"):]
    return name if name in _TFDS_SHORTCUTS else None


def _tfds_source(tfds_name, split, data_dir):
    ds = load_tfds(tfds_name, split=split, data_dir=data_dir)
    card = int(ds.cardinality())
    shape = tuple(ds.element_spec.shape.as_list())
    return ds, DataInfo("image", shape, 8, card if card >= 0 else None)


def _npz_source(name, split):
    """Split ``S`` of a ``.npz`` file: its key ``S``, or key ``"x"`` for ``"train"``; ``"a+b"`` concatenates."""
    keys = npz_keys(name)
    parts = [load_npz(name, key="x" if key is None else key)
             for key in _resolve_split_key(split, keys, name, "array")]
    return _image_info(_concat_images(parts, name))


def _folder_source(name, split, image_size, grayscale):
    """Split ``S`` of an image folder: sub-folder ``S``, or the folder itself for ``"train"``."""
    subdirs = sorted(d for d in os.listdir(name) if os.path.isdir(os.path.join(name, d)))
    parts = [load_image_folder(name if sub is None else os.path.join(name, sub), image_size=image_size,
                               grayscale=grayscale)
             for sub in _resolve_split_key(split, subdirs, name, "sub-folder")]
    return _image_info(_concat_images(parts, name))


def _concat_images(parts, source):
    if len(parts) == 1:
        return parts[0]
    shapes = {p.shape[1:] for p in parts}
    if len(shapes) != 1:
        raise ValueError(
            f"cannot concatenate splits of {source!r}: image shapes differ {sorted(shapes)}"
        )
    return np.concatenate(parts, axis=0)

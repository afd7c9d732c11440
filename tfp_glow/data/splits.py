"""Held-out splits: the train / validation / test examples of any data source.

`load_split(name, split)` is how `tfp-glow` (and anyone training through the API) splits data:

* offline sources (`digits`, `digits28`, `photos32`) and the 2-D toy sets have fixed splits
  of their own (`tfp_glow.data.get_source`);
* TensorFlow Datasets sources (`mnist`, `cifar10`, `tfds:NAME`): train = the first
  `1 - val_fraction` of split `train` (a percent slice), validation = the rest of it,
  test = split `test`;
* `.npz` files and image folders use their own `train` / `validation` / `test` splits where
  they have them; a missing test or validation split is a fixed fraction of the examples
  (`DEFAULT_TEST_FRACTION`, `DEFAULT_VAL_FRACTION`), drawn by a permutation seeded with
  `HOLDOUT_SEED`, so the same examples are held out in every run and the parts are disjoint.

Imports only `tfp_glow.data`; `recipes` and the CLI build on it.
"""
import os

import numpy as np

import tfp_glow.data.sources as data_lib  # get_source, DataInfo, OFFLINE_IMAGE_NAMES
from tfp_glow.data.toys import TOY_NAMES

__all__ = ["DEFAULT_VAL_FRACTION", "DEFAULT_TEST_FRACTION", "HOLDOUT_SEED", "SPLITS", "TFDS_SHORTCUTS",
           "data_kind", "load_split", "num_examples"]

DEFAULT_VAL_FRACTION = 0.1
DEFAULT_TEST_FRACTION = 0.1
HOLDOUT_SEED = 0
SPLITS = ("train", "validation", "test")
TFDS_SHORTCUTS = ("mnist", "cifar10")


def data_kind(name):
    """`"vector"` for the 2-D toy sets, `"image"` for every other source name (without loading it)."""
    return "vector" if name in TOY_NAMES else "image"


def _is_tfds(name):
    return name.startswith("tfds:") or name in TFDS_SHORTCUTS


def _available_splits(name):
    """Split names an npz file / image folder provides itself."""
    if name.lower().endswith(".npz"):
        if not os.path.isfile(name):
            raise FileNotFoundError(f"npz file not found: {name!r}")
        with np.load(name, allow_pickle=False) as npz:
            return set(npz.keys())
    if os.path.isdir(name):
        return {d for d in os.listdir(name) if os.path.isdir(os.path.join(name, d))}
    return set()


def load_split(name, split, val_fraction=DEFAULT_VAL_FRACTION, test_fraction=DEFAULT_TEST_FRACTION,
               data_dir=None, image_size=None, grayscale=False):
    """One split of a data source (see the module docstring for how each kind is split).

    Args:
      name: a source name or path, as `tfp_glow.data.get_source` takes it.
      split: `train`, `validation` or `test`.
      val_fraction, test_fraction: the fractions held out where the source has no such split.
      data_dir: TensorFlow Datasets data directory (tfds sources).
      image_size, grayscale: image folders only: resize to `(H, W)`, read as one channel
        (`tfp_glow.data.load_image_folder`).

    Returns:
      `(data, info)`: a numpy array or (tfds) a `tf.data.Dataset` of single examples, and
      the `tfp_glow.data.DataInfo`.

    Raises:
      ValueError: an unknown source, or too few examples to hold out a test and a
        validation part and still train.
      FileNotFoundError: a missing `.npz` file.
    """
    folder = {"image_size": image_size, "grayscale": grayscale}  # get_source refuses them but for folders
    if name in data_lib.OFFLINE_IMAGE_NAMES or name in TOY_NAMES:
        return data_lib.get_source(name, split, **folder)
    if _is_tfds(name):
        keep = int(round(100 * (1 - val_fraction)))
        tfds_split = {"train": f"train[:{keep}%]", "validation": f"train[{keep}%:]", "test": "test"}[split]
        return data_lib.get_source(name, tfds_split, data_dir=data_dir, **folder)
    if not (name.lower().endswith(".npz") or os.path.isdir(name)):
        return data_lib.get_source(name, split, **folder)  # raises the "unknown data source" error
    available = _available_splits(name)
    if split in available:
        return data_lib.get_source(name, split, **folder)
    pool, info = data_lib.get_source(name, "train", **folder)
    n = len(pool)
    n_test = 0 if "test" in available else max(1, int(round(test_fraction * n)))
    n_val = 0 if "validation" in available else max(1, int(round(val_fraction * n)))
    if n - n_test - n_val < 1:
        raise ValueError(f"{name!r} has {n} examples: too few to hold out {n_test} for testing and {n_val} "
                         f"for validation and still train; add data or validation/test splits.")
    perm = np.random.default_rng(HOLDOUT_SEED).permutation(n)
    parts = {"train": perm[:n - n_test - n_val], "validation": perm[n - n_test - n_val:n - n_test],
             "test": perm[n - n_test:]}
    x = pool[np.sort(parts[split])]
    return x, data_lib.DataInfo(info.kind, info.shape, info.n_bits_native, int(len(x)))


def num_examples(x):
    """The number of examples of a split: an array's length, or a dataset's known cardinality
    (`None` when unknown)."""
    if hasattr(x, "shape") and not hasattr(x, "element_spec"):
        return int(x.shape[0])
    card = int(x.cardinality())
    return card if card >= 0 else None

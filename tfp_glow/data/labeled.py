"""Labelled splits: `(images, labels)` of the sources that have class labels.

`load_labeled_split(name, split)` gives the same images as `splits.load_split(name, split)`,
in the same order, with their labels:

* `digits`, `digits28`: scikit-learn's digit classes (0..9), through the same fixed
  permutation as `tfp_glow.data.load_digits`;
* an `.npz` file: labels under key `y` for the images under `x`, and under `<split>_y` for
  the images under a split key `<split>`; held-out parts use the permutation of
  `splits.load_split`. The number of classes is the file's `num_classes` entry if it has
  one, else the largest label of the training part plus one;
* TensorFlow Datasets names: `tfds.load(..., as_supervised=True)`, a `tf.data.Dataset` of
  `(image, label)` pairs, with the number of classes from the dataset's info.

Other sources have no labels and raise a `ValueError`.
"""
import os

import numpy as np
import tensorflow as tf

import tfp_glow.data.splits as splits

__all__ = ["LABELED_OFFLINE", "digit_labels", "load_labeled_split", "to_dataset"]

LABELED_OFFLINE = ("digits", "digits28")
_DIGITS_N, _DIGITS_TEST, _DIGITS_VAL = 1797, 360, 144


def digit_labels(split):
    """scikit-learn's digit classes `int32 [N]` in the order of `data.load_digits(split)`."""
    from sklearn import datasets as sk_datasets  # lazily, as tfp_glow.data does

    target = sk_datasets.load_digits().target
    perm = np.random.default_rng(0).permutation(_DIGITS_N)
    n_trainval = _DIGITS_N - _DIGITS_TEST
    n_train = n_trainval - _DIGITS_VAL
    index = {"train": perm[:n_train], "validation": perm[n_train:n_trainval], "test": perm[n_trainval:],
             "train+validation": perm[:n_trainval]}[split]
    return target[index].astype(np.int32)


def _npz_labels(name, split, val_fraction, test_fraction):
    with np.load(name, allow_pickle=False) as npz:
        keys = set(npz.keys())
        k_given = int(npz["num_classes"]) if "num_classes" in keys else None
        if split in keys:
            key = f"{split}_y"
            if key not in keys:
                raise ValueError(f"{name!r} has images under {split!r} but no labels under {key!r}.")
            y = npz[key]
        else:
            base = "train" if "train" in keys else "x"
            key = "train_y" if base == "train" else "y"
            if key not in keys:
                raise ValueError(f"{name!r} has no labels: expected integer class labels under key {key!r} "
                                 f"(one per image of {base!r}).")
            pool = npz[key]
            n = len(pool)
            n_test = 0 if "test" in keys else max(1, int(round(test_fraction * n)))
            n_val = 0 if "validation" in keys else max(1, int(round(val_fraction * n)))
            perm = np.random.default_rng(splits.HOLDOUT_SEED).permutation(n)
            parts = {"train": perm[:n - n_test - n_val], "validation": perm[n - n_test - n_val:n - n_test],
                     "test": perm[n - n_test:]}
            y = pool[np.sort(parts[split])]
        train_key = "train_y" if "train_y" in keys else "y"
        k = k_given or (int(np.max(npz[train_key])) + 1 if train_key in keys else None)
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name!r}: labels must be integers; found dtype {y.dtype}.")
    return y.astype(np.int32).reshape(-1), k


def _tfds_labeled(name, split, val_fraction, data_dir):
    import tensorflow_datasets as tfds  # lazily (slow import)

    tfds_name = name[len("tfds:"):] if name.startswith("tfds:") else name
    keep = int(round(100 * (1 - val_fraction)))
    tfds_split = {"train": f"train[:{keep}%]", "validation": f"train[{keep}%:]", "test": "test"}[split]
    try:
        ds, info = tfds.load(tfds_name, split=tfds_split, data_dir=data_dir, as_supervised=True, with_info=True)
    except Exception as e:
        raise RuntimeError(f"could not load TFDS dataset {tfds_name!r} with labels (split {tfds_split!r}): "
                           f"{type(e).__name__}: {e}") from e
    label = info.supervised_keys[1] if info.supervised_keys else "label"
    k = int(info.features[label].num_classes)
    ds = ds.map(lambda x, y: (x if x.shape.rank == 3 else x[..., None], tf.cast(y, tf.int32)))
    return ds, k


def load_labeled_split(name, split, val_fraction=splits.DEFAULT_VAL_FRACTION,
                       test_fraction=splits.DEFAULT_TEST_FRACTION, data_dir=None):
    """One split of a labelled source (see the module docstring).

    Returns:
      `(x, y, info, num_classes)`: images as `splits.load_split` gives them and their labels
      `int32 [N]`; for TFDS sources `x` is a dataset of `(image, label)` pairs and `y` is
      `None`.

    Raises:
      ValueError: a source without labels, or labels that do not match its images.
    """
    if name in LABELED_OFFLINE:
        x, info = splits.load_split(name, split, val_fraction, test_fraction, data_dir)
        return x, digit_labels(split), info, 10
    if splits._is_tfds(name):
        ds, k = _tfds_labeled(name, split, val_fraction, data_dir)
        _, info = splits.load_split(name, split, val_fraction, test_fraction, data_dir)
        return ds, None, info, k
    if os.fspath(name).lower().endswith(".npz"):
        x, info = splits.load_split(name, split, val_fraction, test_fraction, data_dir)
        y, k = _npz_labels(name, split, val_fraction, test_fraction)
        if len(y) != len(x):
            raise ValueError(f"{name!r}: {len(y)} labels for {len(x)} images in split {split!r}.")
        if k is None or k < 2:
            raise ValueError(f"{name!r}: labels must cover at least 2 classes; found num_classes={k}.")
        return x, y, info, k
    raise ValueError(f"{name!r} has no class labels; conditional models train on {list(LABELED_OFFLINE)}, an "
                     f".npz file with labels under 'y', or a TensorFlow Datasets name (image, label).")


def to_dataset(x, y):
    """A `tf.data.Dataset` of `(image, label)` pairs from arrays (or a labelled dataset as is)."""
    if y is None:
        return x
    return tf.data.Dataset.from_tensor_slices((np.asarray(x), np.asarray(y, np.int32)))


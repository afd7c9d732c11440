"""Keras input handling of `FlowModel`: a batch's features, targets and weights, and `fit`'s first batch.

A batch is what Keras hands to the steps: `x`, `(x, y)`, `(x, y, sample_weight)`, or a dict
with the data under `image` (or `x`) and, for a conditional model, the labels under `label`
(or `y`). `y` is the conditioning input of a conditional flow (class labels, or a context
tensor), and for an unconditional one only what `class_weight` maps to weights.
"""
import inspect

import keras
import numpy as np
import tensorflow as tf

from tfp_glow.training import keras_inputs

__all__ = ["features", "unpack", "first_batch", "lacks_labels", "placeholder_targets"]


def features(data):
    """The data of a batch: `x` of a tuple, `image` (or `x`) of a dict, or the batch itself."""
    if isinstance(data, (tuple, list)):
        return data[0]
    if isinstance(data, dict):
        return data["image"] if "image" in data else data["x"]
    return data


def _dict_targets(data):
    return data.get("label", data.get("y")) if isinstance(data, dict) else None


def unpack(data):
    """`(features, y, sample_weight)` of a batch as Keras hands it to the steps (`y` may come
    from a dict's `label`)."""
    x, y, sw = keras.utils.unpack_x_y_sample_weight(data)
    if y is None:
        y = _dict_targets(x)
    return features(x), y, sw


def first_batch(x, y=None):
    """`(features, targets, x for fit)`: `fit`'s first batch (`keras_inputs.peek_first_batch`)
    with its targets (`None` when it has none), and the input to hand on to Keras."""
    if keras_inputs.is_array_like(x):
        first, x = keras_inputs.peek_first_batch(x)
        targets = y if y is not None else _dict_targets(x)
        return first, None if targets is None else targets[:len(first)], x
    batch, x = keras_inputs.peek_first_batch(x, features=lambda b: b)
    first, targets, _ = unpack(batch)
    return first, targets, x


def lacks_labels(x, y):
    """True when `fit` visibly has no labels for `class_weight` (arrays without `y`, or a
    dataset of bare features)."""
    if isinstance(x, tf.data.Dataset):
        return keras.utils.unpack_x_y_sample_weight(x.element_spec)[1] is None
    if isinstance(x, keras.utils.PyDataset) or inspect.isgenerator(x):
        return False  # not visible without drawing a batch; Keras checks them itself
    return y is None


def placeholder_targets(x, y, sample_weight):
    """`y`, or zeros `[N]` when array input has `sample_weight` but no labels.

    Keras packs array input without `y` as `x` alone and drops `sample_weight` silently
    (`keras.utils.pack_x_y_sample_weight`); an unconditional flow has no labels, so it gets
    placeholder ones, which the steps ignore, and the weights reach the loss.
    """
    if y is not None or sample_weight is None or isinstance(x, (tf.data.Dataset, keras.utils.PyDataset)):
        return y
    return np.zeros([len(features(x))], np.float32)

"""The first batch of any input Keras' `fit` accepts, without spoiling it for `fit`.

`FlowModel.fit` checks the first batch and initialises ActNorm from it before Keras sees the
data. Keras takes arrays (and dicts of them), `tf.data.Dataset`s, `keras.utils.PyDataset`s
and Python generators; each needs its own way to look at a batch:

| input | first batch | what `fit` then gets |
|---|---|---|
| arrays, tensors, dicts of them | the first 256 examples | the same object |
| `tf.data.Dataset` | one element, from a fresh iteration (`take(1)`) | the same dataset |
| `keras.utils.PyDataset` | `x[0]` (random access, nothing consumed) | the same object |
| generator | `next(x)` | a generator yielding that batch, then the rest of `x` |

So a generator's first batch is trained on as usual, and nothing is drawn twice.
"""
import types

import keras
import numpy as np
import tensorflow as tf

__all__ = ["peek_first_batch", "check_batched", "is_array_like", "InputKindError"]

#: examples taken from array inputs for the first-batch check and the ActNorm initialisation
ARRAY_INIT_EXAMPLES = 256


class InputKindError(ValueError):
    """An input whose first batch cannot be looked at without consuming it."""


def _features(data):
    """The features of a batch (or of an element spec): `x` of `(x, y, sw)`, `image`/`x` of a dict."""
    x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    if isinstance(x, dict):
        for key in ("image", "x"):
            if key in x:
                return x[key]
        raise ValueError(f"A dict batch must hold the data under 'image' or 'x'; it has the keys {sorted(x)}.")
    return x


def is_array_like(x):
    """Arrays, tensors, lists, or a dict of them: input whose first batch is a slice."""
    return isinstance(x, (np.ndarray, tf.Tensor, tf.Variable, list)) or (
        isinstance(x, dict) and all(isinstance(v, (np.ndarray, tf.Tensor, list)) for v in x.values()))


def check_batched(x, event_shape, what="the dataset"):
    """Raise a clear `ValueError` if a `tf.data.Dataset` yields single examples, not batches.

    Args:
      x: anything `fit`/`evaluate`/`predict` takes; only `tf.data.Dataset`s are checked.
      event_shape: the model's event shape (Python ints).
      what: how the message names `x`.
    """
    if not isinstance(x, tf.data.Dataset):
        return
    spec = _features(x.element_spec)
    shape = getattr(spec, "shape", None)
    if shape is None or shape.rank is None:
        return
    if shape.rank == len(event_shape):
        raise ValueError(
            f"{what} yields single examples of shape {shape.as_list()}, not batches: the model expects "
            f"batches [batch, {', '.join(str(d) for d in event_shape)}]. Batch it first, for example "
            f"`dataset.batch(64)` (or tfp_glow.data.make_dataset(x, batch_size)).")


def peek_first_batch(x, features=_features):
    """`(first_batch, x_for_fit)`: the features of `x`'s first batch, and what to hand to `fit`.

    Args:
      x: arrays (or a dict of them), a `tf.data.Dataset`, a `keras.utils.PyDataset` or a
        generator, as for `keras.Model.fit`.
      features: maps a batch to its features (default: `x` of `(x, y, sample_weight)`).

    Returns:
      The first batch's features (up to `ARRAY_INIT_EXAMPLES` examples of array input) and
      `x` itself, or for a generator, a generator that yields the peeked batch first.

    Raises:
      ValueError: an empty input.
      InputKindError: an input of another kind (its first batch is not looked at).
    """
    if isinstance(x, tf.data.Dataset):
        for batch in x.take(1):
            return features(batch), x
        raise ValueError("The dataset is empty: no batch to train on.")
    if isinstance(x, keras.utils.PyDataset):
        n = x.num_batches
        if n == 0:
            raise ValueError("The PyDataset is empty (num_batches == 0): no batch to train on.")
        try:
            batch = x[0]
        except IndexError as e:
            raise ValueError("The PyDataset is empty: x[0] raised IndexError.") from e
        return features(batch), x
    if isinstance(x, types.GeneratorType):
        try:
            batch = next(x)
        except StopIteration as e:
            raise ValueError("The generator is empty: no batch to train on.") from e

        def replay():  # the peeked batch first, then the rest: nothing is lost or repeated
            yield batch
            yield from x

        return features(batch), replay()
    if x is not None and is_array_like(x):
        data = features(x)
        if len(data) == 0:
            raise ValueError("The dataset is empty: no examples to train on.")
        return data[:ARRAY_INIT_EXAMPLES], x
    raise InputKindError(
        f"Cannot look at the first batch of an input of type {type(x).__name__}. Pass arrays, a "
        f"tf.data.Dataset, a keras.utils.PyDataset or a generator, or initialise the model first "
        f"with model.initialize(batch).")


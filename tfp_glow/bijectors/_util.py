"""Shared plumbing for the bijectors: Keras-weight exposure and shape checks."""
import keras
import tensorflow as tf


def keras_variables(*layers):
    """The `tf.Variable`s behind the weights of Keras 3 layers.

    Keras 3 tracks `keras.Variable`s; `tf.Module.trainable_variables` (what TFP's
    `bijector.trainable_variables` walks) finds only `tf.Variable`s. A bijector keeps this
    tuple as an attribute so both views see the very same variable objects.

    Args:
      *layers: built `keras.Layer`s.

    Returns:
      A tuple of `tf.Variable` (one per Keras weight, trainable and not).
    """
    out = []
    for layer in layers:
        if not isinstance(layer, keras.Layer):
            continue
        if not layer.built:
            raise ValueError(f"Layer {layer.name!r} must be built before its weights are exposed.")
        out.extend(w.value for w in layer.weights)
    return tuple(out)


def check_event_shape(x, expected, who):
    """Raise a `ValueError` when the trailing dims of `x` differ from `expected`.

    Args:
      x: a tensor `[..., *expected]`.
      expected: tuple of Python ints, the event shape.
      who: name used in the message.
    """
    shape = tf.TensorShape(x.shape)
    n = len(expected)
    if shape.rank is None:
        raise ValueError(f"{who}: input rank must be known; expected event shape {list(expected)}.")
    got = tuple(shape.as_list()[-n:]) if shape.rank >= n else tuple(shape.as_list())
    if shape.rank < n or got != tuple(expected):
        raise ValueError(
            f"{who}: expected an input with event shape {list(expected)} (rank >= {n}); "
            f"received shape {shape.as_list()}.")


def check_channels(x, channels, who):
    """Raise a `ValueError` when the last axis of `x` is not `channels`."""
    shape = tf.TensorShape(x.shape)
    if shape.rank is None or shape.rank < 1 or shape[-1] != channels:
        raise ValueError(
            f"{who}: expected {channels} channels on the last axis; received shape "
            f"{shape.as_list() if shape.rank is not None else 'unknown'}.")


def apply_on_events(fn, x, event_rank):
    """Call `fn` on `x` with all batch dims folded into one, then unfold them.

    Keras convolutions want exactly one batch axis; TFP allows any number.

    Args:
      fn: callable on `[N, *event]`.
      x: tensor `[*batch, *event]` with `event_rank` event dims.
      event_rank: Python int.
    """
    if x.shape.rank == event_rank + 1:
        return fn(x)
    event = x.shape[-event_rank:].as_list()
    batch = tf.shape(x)[:-event_rank]
    y = fn(tf.reshape(x, [-1] + event))
    return tf.reshape(y, tf.concat([batch, tf.shape(y)[1:]], axis=0))


def layer_dtype(dtype):
    """Keras dtype for a conditioner network: follow the global (mixed) policy in float32."""
    return None if tf.as_dtype(dtype) == tf.float32 else tf.as_dtype(dtype).name

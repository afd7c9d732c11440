"""Shared plumbing for the bijectors: Keras-weight exposure and shape checks."""
import keras
import tensorflow as tf
from tensorflow_probability.python.internal import cache_util


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


def _graph_only(cache_class, returns_attrs):
    """A TFP bijector cache that caches inside graphs (`tf.function`) only.

    TFP keys its cache on the input tensor object. Eagerly, a loop that feeds the same tensor
    after a parameter update would get the old output back (and a log-det cut off from the
    gradient tape); computing afresh is always right there, and costs nothing extra in a
    graph, where the cache still removes repeated work.
    """

    class GraphOnlyCache(cache_class):
        def _lookup(self, input, forward_name, inverse_name, **kwargs):  # noqa: A002
            if tf.executing_eagerly():
                out = getattr(self.bijector, forward_name)(input, **kwargs)
                return out[0] if returns_attrs else out
            return super()._lookup(input, forward_name, inverse_name, **kwargs)

        def _attributes(self, input, fn_name, **kwargs):  # noqa: A002
            if tf.executing_eagerly():
                return {}
            return super()._attributes(input, fn_name, **kwargs)

    return GraphOnlyCache


class FusedLogDetMixin:
    """The hooks `walk.py` calls: `(output, unreduced log-det)` in one pass.

    The log-det is at the bijector's minimum event rank (a scalar when constant), exactly what
    its `_forward_log_det_jacobian` / `_inverse_log_det_jacobian` return.
    """

    _cache = _graph_only(cache_util.BijectorCache, returns_attrs=False)()

    def _forward_and_log_det(self, z, **kwargs):
        return self._forward(z, **kwargs), self._forward_log_det_jacobian(z, **kwargs)

    def _inverse_and_log_det(self, x, **kwargs):
        return self._inverse(x, **kwargs), self._inverse_log_det_jacobian(x, **kwargs)


class AugmentedBijectorMixin:
    """TFP hooks for a bijector whose `_augmented_forward(z)` / `_augmented_inverse(x)` return
    `(output, {"fldj": ..., "ildj": ...})` from one pass (one conditioner call).

    The greedy cache stores the log-det computed alongside the output, so `log_prob` (inverse,
    then ildj) does not run the network twice (TFP's FFJORD uses the same cache).
    """

    _cache = _graph_only(cache_util.BijectorCacheWithGreedyAttrs, returns_attrs=True)(
        forward_name="_augmented_forward", inverse_name="_augmented_inverse")

    # **kwargs: TFP bijector kwargs (a conditional bijector's `conditional_input`); the cache
    # keys on them too.
    def _forward(self, z, **kwargs):
        return self._augmented_forward(z, **kwargs)[0]

    def _inverse(self, x, **kwargs):
        return self._augmented_inverse(x, **kwargs)[0]

    def _forward_log_det_jacobian(self, z, **kwargs):
        cached = self._cache.forward_attributes(z, **kwargs)
        if "fldj" not in cached:
            cached.update(self._augmented_forward(z, **kwargs)[1])
        return cached["fldj"]

    def _inverse_log_det_jacobian(self, x, **kwargs):
        cached = self._cache.inverse_attributes(x, **kwargs)
        if "ildj" not in cached:
            cached.update(self._augmented_inverse(x, **kwargs)[1])
        return cached["ildj"]

    def _forward_and_log_det(self, z, **kwargs):
        x, attrs = self._augmented_forward(z, **kwargs)
        return x, attrs["fldj"]

    def _inverse_and_log_det(self, x, **kwargs):
        z, attrs = self._augmented_inverse(x, **kwargs)
        return z, attrs["ildj"]

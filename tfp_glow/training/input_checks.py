"""The one input check of `FlowModel`: eager on what the user hands over, in-graph on every batch.

Images are 8-bit levels `[N, *event_shape]`: whole numbers in `0..255` (the model reduces them
to `n_bits` itself), finite, of a real numeric dtype; vectors are finite floats `[N, D]`.

* `check_events` is the eager check (numpy, `data.validate_images` / `validate_vectors` on a
  flat view so any event rank fits); every entry point that takes data calls it: `fit` (its
  data and `validation_data`), `evaluate`, `predict`, `model(x)`, `log_prob`, `encode`,
  `classify`, `initialize`, the CLI. `check_latents` is its counterpart for `decode`.
* `batch_code` is the same check inside the compiled steps, for the batches no one can look at
  up front (`tf.data`, generators): an int32 code per batch, `CODE_BITS` OR-ed, made of
  XLA-compatible reductions (no `tf.debugging` assert, which XLA drops). uint8 images cannot
  fail it, so they get no op at all. The train step never applies the update of a batch whose
  code is not 0; the steps add the code to `input_error_tracker`.
* `InputGuard`, a callback that `fit`, `evaluate` and `predict` add, reads that running total
  after every batch and raises `BadBatchError` naming the batch and what is wrong with it.
"""
import keras
import tensorflow as tf

from tfp_glow import data as data_lib
from tfp_glow.training import inputs, keras_inputs

__all__ = ["BadBatchError", "CODE_BITS", "check_events", "check_latents", "check_static_shape", "batch_code",
           "check_keras_input", "InputGuard", "with_guard"]

#: what each bit of a batch's code means
CODE_BITS = {1: "NaN or infinite values", 2: "pixel values outside 0..255",
             4: "pixel values that are not whole 8-bit levels (images scaled to [0, 1] must be multiplied by "
                "255 and rounded first)"}


class BadBatchError(ValueError):
    """A batch failed the in-graph input check (`batch_code`); the message names the batch."""


def _describe(model):
    return f"{model.config_.flow} on event shape {list(model.event_shape)}"


def _expected(model):
    if model.is_image:
        return (f"8-bit images (whole levels 0..255, reduced to n_bits={model.n_bits} inside the model) of shape "
                f"{[None, *model.event_shape]}")
    return f"finite float vectors of shape {[None, *model.event_shape]}"


def check_static_shape(model, shape, what="Data", expected=None, name=None):
    """Raise `ValueError` unless the known dims of `shape` (after the batch axis) fit the model.

    Args:
      model: the `FlowModel`.
      shape: a `tf.TensorShape` or tuple, batch axis first; unknown dims pass.
      what: how the message names the data.
      expected: the event shape expected (default the model's).
      name: the expected kind, for the message (default `_expected(model)`).
    """
    shape = tf.TensorShape(shape)
    expected = tuple(model.event_shape if expected is None else expected)
    if shape.rank is None:
        return
    got = tuple(shape.as_list()[1:])
    if len(got) != len(expected) or any(g is not None and g != e for g, e in zip(got, expected)):
        raise ValueError(f"{what} of shape {[None, *got]} does not fit this model, which expects "
                         f"{name or _expected(model)} ({_describe(model)}).")


def check_events(model, x, what="Data", allow_empty=False):
    """The eager input check; returns `x` as a tensor.

    Symbolic tensors (inside a `tf.function`) get the shape check only; their values are
    checked by the steps' `batch_code`.

    Args:
      model: the `FlowModel`.
      x: data `[N, *event_shape]`: uint8 (or integer-valued) images with `n_bits`, float
        vectors without.
      what: how messages name `x`.
      allow_empty: accept `N = 0` (shape checked only).

    Raises:
      ValueError: a wrong shape or dtype, NaN/inf, values that are not 8-bit levels.
    """
    x = tf.convert_to_tensor(x)
    check_static_shape(model, x.shape, what)
    if not tf.executing_eagerly() or (allow_empty and x.shape[0] == 0):
        return x
    flat = x.numpy().reshape(len(x), -1)
    if model.is_image:
        data_lib.validate_images(flat[:, :, None, None], name=what)
    else:
        data_lib.validate_vectors(flat, name=what)
    return x


def check_latents(model, z):
    """`z` as float32, checked: shape `[N, *latent_shape]` and finite (eager values only)."""
    z = tf.convert_to_tensor(z, tf.float32)
    check_static_shape(model, z.shape, "The latent", model.latent_shape,
                       f"latents of shape {[None, *model.latent_shape]}")
    if tf.executing_eagerly() and not bool(tf.reduce_all(tf.math.is_finite(z))):
        bad = int(tf.reduce_sum(tf.cast(~tf.math.is_finite(z), tf.int32)))
        raise ValueError(f"The latent must be finite; it holds {bad} NaN/inf value(s) out of {int(tf.size(z))}.")
    return z


def batch_code(model, x):
    """The in-graph check of one batch: int32 scalar, 0 when it is good (see `CODE_BITS`), or
    `None` when nothing can be wrong with it (uint8 images). Agreed across replicas (OR).

    Args:
      model: the `FlowModel`.
      x: the batch's raw data `[N, *event_shape]` (any size, unknown included).
    """
    check_static_shape(model, x.shape, "A batch")
    dtype = tf.as_dtype(x.dtype)
    if model.is_image and dtype == tf.uint8:
        return None
    if not model.is_image and not dtype.is_floating:
        return None
    finite_flag = tf.reduce_any(~tf.math.is_finite(x)) if dtype.is_floating else tf.constant(False)
    flags = [finite_flag]
    if model.is_image:
        v = tf.cast(x, tf.float32) if dtype.is_floating else x
        flags.append(tf.reduce_any((v < 0) | (v > 255)))  # NaN compares false: bit 1 holds it
        flags.append(tf.reduce_any(tf.math.floor(v) != v) if dtype.is_floating else tf.constant(False))
    weights = tf.constant([1, 2, 4][:len(flags)], tf.int32)
    flags = tf.cast(tf.stack(flags), tf.int32)
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
        flags = tf.minimum(ctx.all_reduce(tf.distribute.ReduceOp.SUM, flags), 1)
    return tf.reduce_sum(flags * weights)


def check_keras_input(model, x, what):
    """Check what `fit`/`evaluate`/`predict` got, before any step.

    Arrays (and dicts, and `(x, y, ...)` tuples of `validation_data`) are checked whole; a
    `tf.data.Dataset` by its element spec (batched, shape, dtype), and with `first_batch` by
    its first batch too. Every batch is checked again in the steps (`batch_code`).
    """
    if x is None:
        return
    keras_inputs.check_batched(x, model.event_shape, what)
    if isinstance(x, tf.data.Dataset):
        spec = inputs.features(keras.utils.unpack_x_y_sample_weight(x.element_spec)[0])
        shape = getattr(spec, "shape", None)
        if shape is not None:
            check_static_shape(model, shape, f"{what} (its elements)")
        dtype = getattr(spec, "dtype", None)
        if dtype is not None and not (dtype.is_integer or dtype.is_floating):
            raise ValueError(f"{what} yields {dtype.name} data; this model expects {_expected(model)}.")
        return
    if isinstance(x, tuple) and not keras_inputs.is_array_like(x):
        x = x[0]
    if keras_inputs.is_array_like(x):
        check_events(model, inputs.features(x), what)


def check_first_batch(model, x, what):
    """Check the first batch of a `tf.data.Dataset` (or `(x, ...)` arrays via `check_keras_input`)."""
    check_keras_input(model, x, what)
    if isinstance(x, tf.data.Dataset):
        for batch in x.take(1):
            check_events(model, inputs.unpack(batch)[0], f"{what} (its first batch)")


class InputGuard(keras.callbacks.Callback):
    """Raises `BadBatchError` after the first batch that failed the in-graph check.

    The train step did not apply that batch's update, so the weights and the optimizer are as
    they were before it. Reads `model.input_error_tracker` (a running sum of the batch codes).
    """

    def __init__(self):
        super().__init__()
        self._seen = 0.0
        self._epoch = 0
        self._fitting = False  # fit's validation is evaluate inside fit

    def _check(self, batch, where, after):
        tracker = getattr(self.model, "input_error_tracker", None)
        if tracker is None:
            return
        total = float(tracker.result())
        code, self._seen = int(round(total - self._seen)), total
        if code:
            problems = "; ".join(t for bit, t in CODE_BITS.items() if code & bit) if code < 8 else (
                "several bad batches")
            raise BadBatchError(f"{where} batch {batch + 1} holds {problems}: this model expects "
                                f"{_expected(self.model)}. {after}")

    def _begin(self, logs=None):
        self._seen = float(self.model.input_error_tracker.result())

    on_test_begin = on_predict_begin = _begin

    def on_train_begin(self, logs=None):
        self._fitting = True
        self._begin()

    def on_train_end(self, logs=None):
        self._fitting = False

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._check(batch, f"Training data, epoch {self._epoch + 1},",
                    "Training stopped; the update of that batch was not applied.")

    def on_test_batch_end(self, batch, logs=None):
        if self._fitting:
            self._check(batch, f"Validation data, after epoch {self._epoch + 1},", "Training stopped.")
        else:
            self._check(batch, "Evaluation data,", "Evaluation stopped.")

    def on_predict_batch_end(self, batch, logs=None):
        self._check(batch, "Prediction data,", "Prediction stopped.")


def with_guard(callbacks):
    """`callbacks` with an `InputGuard` added (a Keras `CallbackList`, as `fit` hands to its
    validation, is returned as it is: `fit` added the guard already)."""
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return callbacks
    callbacks = list(callbacks or [])
    if not any(isinstance(c, InputGuard) for c in callbacks):
        callbacks.append(InputGuard())
    return callbacks

"""Run-time input checks of the serving signatures, with errors that name the expected input.

The signature wrappers of a loaded SavedModel check dtypes only, and a wrong shape would fail
deep inside the flow with an unrelated message, or for some shapes not fail at all. Every check
here is a `tf.debugging.Assert` whose message starts `tfp_glow SavedModel, signature NAME:
expects ...`; its value passes through under a control dependency. Messages hold no quotes
(the Assert op escapes them).
"""
import tensorflow as tf

__all__ = ["check_labels", "check_rows", "check_shape", "check_temperature", "decode_images", "spec_text"]


def _prefix(signature):
    return f"tfp_glow SavedModel, signature {signature}:"


def spec_text(dtype, shape):
    """`"uint8 [batch, 8, 8, 1]"`: how messages write an input with a batch axis."""
    return f"{tf.as_dtype(dtype).name} [{', '.join(['batch'] + [str(d) for d in shape])}]"


def _passing(value, checks):
    with tf.control_dependencies(checks):
        return tf.identity(value)


def check_shape(t, signature, arg, event_shape, note=""):
    """`t` after a check that its shape is `[batch, *event_shape]`.

    Args:
      t: the input tensor.
      signature, arg: the names the message gives.
      event_shape: Python ints, the shape after the batch axis.
      note: text after the expected spec, e.g. `" (latent)"`.
    """
    rank = len(event_shape) + 1
    shape = tf.shape(t)
    padded = tf.concat([shape, tf.fill([rank], -1)], axis=0)[1:rank]
    ok = tf.logical_and(tf.equal(tf.size(shape), rank),
                        tf.reduce_all(tf.equal(padded, tf.constant(event_shape, tf.int32))))
    msg = f"{_prefix(signature)} expects {arg}: {spec_text(t.dtype, event_shape)}{note}; received a tensor of shape"
    return _passing(t, [tf.debugging.Assert(ok, [msg, shape], summarize=16, name=f"check_{arg}_shape")])


def check_labels(labels, num_classes, signature, n=None):
    """`labels` after checks: rank 1, in `0..num_classes - 1`, and `n` of them if `n` is given.

    Args:
      labels: int32 `[batch]`.
      num_classes: Python int `K`.
      signature: the name the message gives.
      n: optional scalar tensor, the batch size the labels must match.
    """
    checks = [
        tf.debugging.Assert(tf.equal(tf.rank(labels), 1), [
            f"{_prefix(signature)} expects label: int32 [batch]; received rank", tf.rank(labels)]),
        tf.debugging.Assert(tf.reduce_all((labels >= 0) & (labels < num_classes)), [
            f"{_prefix(signature)} labels must be in 0..{num_classes - 1}; received", labels], summarize=16),
    ]
    if n is not None:
        checks.append(tf.debugging.Assert(tf.equal(tf.size(labels), n), [
            f"{_prefix(signature)} expects one label per example; received", tf.size(labels), "labels for", n,
            "examples"]))
    return _passing(labels, checks)


def check_temperature(temperature, signature):
    """`temperature` (any shape) after a check that every entry is finite and >= 0."""
    ok = tf.reduce_all(tf.logical_and(temperature >= 0.0, tf.math.is_finite(temperature)))
    return _passing(temperature, [tf.debugging.Assert(ok, [
        f"{_prefix(signature)} expects temperature >= 0 (finite); received", temperature], summarize=16)])


def check_rows(signature, n, **inputs):
    """Checks that each of `inputs` (name -> tensor) is a vector of `n` rows; returns them in order.

    Args:
      signature: the name the message gives.
      n: scalar int tensor, the number of rows.
      **inputs: the row inputs, e.g. `temperature=..., seed=...`.
    """
    names = " and ".join(f"{k} [batch]" for k in inputs)
    checks = [tf.debugging.Assert(tf.logical_and(tf.equal(tf.rank(v), 1), tf.equal(tf.size(v), n)), [
        f"{_prefix(signature)} expects {names} of one length; {k} has shape", tf.shape(v), "for", n, "rows"])
        for k, v in inputs.items()]
    return tuple(_passing(v, checks) for v in inputs.values())


def decode_images(image_bytes, signature, event_shape):
    """uint8 `[N, H, W, C]` of `N` encoded PNG/JPEG/GIF/BMP images, each of `H x W` pixels.

    Channels are converted (RGB -> grey and back); another size fails with a message naming the
    expected size. TF Serving's REST API base64-decodes inputs named `*_bytes` (`{"b64": ...}`).
    """
    h, w, c = event_shape
    msg = (f"{_prefix(signature)} expects image_bytes: encoded PNG/JPEG/GIF/BMP images of {h}x{w} pixels; "
           f"received an image of shape")

    def one(b):
        image = tf.io.decode_image(b, channels=c, dtype=tf.uint8, expand_animations=False)
        shape = tf.shape(image)
        ok = tf.reduce_all(tf.equal(shape[:2], tf.constant([h, w], tf.int32)))
        # a wrong size decodes to zeros here and fails the check below, before any other op can
        # fail with a message that does not say what was expected
        fixed = tf.cond(ok, lambda: tf.reshape(image, [h, w, c]), lambda: tf.zeros([h, w, c], tf.uint8))
        return fixed, shape

    images, shapes = tf.map_fn(one, image_bytes, fn_output_signature=(
        tf.TensorSpec([h, w, c], tf.uint8), tf.TensorSpec([3], tf.int32)))
    ok = tf.reduce_all(tf.equal(shapes[:, :2], tf.constant([[h, w]], tf.int32)), axis=1)
    first_bad = tf.gather(shapes, tf.argmin(tf.cast(ok, tf.int32)))
    return _passing(images, [tf.debugging.Assert(tf.reduce_all(ok), [msg, first_bad], summarize=8)])

"""`CheckInput`: the identity, asserting what comes in: finite values of the right event shape.

TFP's `validate_args=True` adds run-time checks at a cost. The builders
(`tfp_glow.models.glow/realnvp/nice(..., validate_args=True)`) put one of these at each end of
the flow, so every tensor entering it is checked once: data on the density side (`inverse`,
`log_prob`) and latents on the sampling side (`forward`, `sample`).
"""
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow.bijectors._util import FusedLogDetMixin

tfb = tfp.bijectors

__all__ = ["CheckInput"]


class CheckInput(FusedLogDetMixin, tfb.Bijector):
    """`y = x`, `log|det J| = 0`; in the checked direction, asserts that `x` is finite and
    that its event shape is `event_shape`.

    A shape that is wrong in the static shape raises a `ValueError` when the graph is built;
    dimensions unknown until run time (`None`) are checked by `tf.debugging.assert_equal` (and
    then set, so the flow behind gets its static event shape), and finiteness by
    `tf.debugging.assert_all_finite` (an `InvalidArgumentError` naming what came in). Under XLA (`jit_compile=True`) TensorFlow drops run-time assertions; the static
    check still applies there.

    Args:
      event_shape: the expected event shape (Python ints).
      direction: `"inverse"` (check what `inverse` receives: data) or `"forward"` (check what
        `forward` receives: latents).
      what: how messages name the input, e.g. `"data"` or `"latent"`.
      validate_args: TFP flag; with `False` nothing is checked (the bijector is the identity).
      dtype: float dtype.
      name: name scope.

    References:
      `tfp.bijectors.Bijector` (`validate_args`); `tfp.bijectors.Identity`.
    """

    def __init__(self, event_shape, direction, what=None, validate_args=True, dtype=tf.float32,
                 name="check_input"):
        parameters = dict(locals())
        if direction not in ("forward", "inverse"):
            raise ValueError(f"direction must be 'forward' or 'inverse'; received {direction!r}.")
        self._event_shape_in = tuple(int(d) for d in event_shape)
        self._direction = direction
        self._what = what or ("data" if direction == "inverse" else "latent")
        super().__init__(forward_min_event_ndims=len(self._event_shape_in), is_constant_jacobian=True,
                         validate_args=validate_args, dtype=dtype, parameters=parameters, name=name)

    @property
    def event_shape_in(self):
        return self._event_shape_in

    def _check(self, x):
        if not self.validate_args:
            return x
        n = len(self._event_shape_in)
        expected = list(self._event_shape_in)
        shape = tf.TensorShape(x.shape)
        if shape.rank is not None and (shape.rank < n or not shape[-n:].is_compatible_with(expected)):
            raise ValueError(f"{self.name}: the {self._what} must have event shape {expected} (a tensor "
                             f"[..., {', '.join(map(str, expected))}]); received shape {shape.as_list()}.")
        checks = [tf.debugging.assert_all_finite(x, f"{self.name}: the {self._what} holds NaN or Inf values")]
        dynamic = shape.rank is None or not shape[-n:].is_fully_defined()
        if dynamic:
            checks.append(tf.debugging.assert_equal(
                tf.shape(x)[-n:], tf.constant(expected, tf.int32),
                message=f"{self.name}: the {self._what} must have event shape {expected}"))
        with tf.control_dependencies(checks):
            if dynamic and shape.rank is not None:
                # checked: now the flow behind sees the static event shape it is built for
                return tf.ensure_shape(x, [None] * (shape.rank - n) + expected)
            return tf.identity(x)

    def _forward(self, x):
        return self._check(x) if self._direction == "forward" else x

    def _inverse(self, y):
        return self._check(y) if self._direction == "inverse" else y

    def _forward_log_det_jacobian(self, x):
        return tf.zeros([], self.dtype)

    def _inverse_log_det_jacobian(self, y):
        return tf.zeros([], self.dtype)

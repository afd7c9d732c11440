"""Squeeze: trade space for channels with `tf.nn.space_to_depth`."""
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow.bijectors._util import FusedLogDetMixin

tfb = tfp.bijectors


class Squeeze(FusedLogDetMixin, tfb.Bijector):
    """Squeeze: `[H, W, C] -> [H/f, W/f, f*f*C]` in `forward`; `log|det J| = 0` (a permutation).

    The pixel order is `tf.nn.space_to_depth`'s: output channel `(i*f + j)*C + c` at `(h, w)`
    holds input `(h*f + i, w*f + j, c)`. Wrap it in `tfb.Invert` for the opposite direction
    (in a flow, data -> latent squeezes, so the chain holds `tfb.Invert(Squeeze())`).

    Args:
      factor: Python int block size `f`.
      validate_args: TFP flag.
      dtype: float dtype.
      name: name scope.

    References:
      Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017 (squeezing).
    """

    def __init__(self, factor=2, validate_args=False, dtype=tf.float32, name="squeeze"):
        parameters = dict(locals())
        if int(factor) < 1:
            raise ValueError(f"Squeeze factor must be >= 1; received {factor!r}.")
        self._factor = int(factor)
        super().__init__(forward_min_event_ndims=3, is_constant_jacobian=True,
                         validate_args=validate_args, dtype=dtype, parameters=parameters, name=name)

    @property
    def factor(self):
        return self._factor

    def _squeezed_shape(self, shape):
        shape = tf.TensorShape(shape)
        if shape.rank is None or shape.rank < 3:
            raise ValueError(f"Squeeze expects an event [H, W, C]; received shape {shape}.")
        h, w, c = shape[-3:]
        f = self._factor
        if h is None or w is None or c is None:
            raise ValueError(f"Squeeze needs static H, W, C; received shape {shape}.")
        if h % f or w % f:
            raise ValueError(
                f"Squeeze by {f} needs H and W divisible by {f}; received event shape [{h}, {w}, {c}].")
        return shape[:-3].concatenate([h // f, w // f, c * f * f])

    def _unsqueezed_shape(self, shape):
        shape = tf.TensorShape(shape)
        f = self._factor
        if shape.rank is None or shape.rank < 3 or shape[-1] is None or shape[-1] % (f * f):
            raise ValueError(
                f"Unsqueeze by {f} expects an event [H, W, C] with C divisible by {f * f}; received shape {shape}.")
        h, w, c = shape[-3:]
        return shape[:-3].concatenate([h * f, w * f, c // (f * f)])

    def _apply(self, x, op, out_shape):
        # space_to_depth wants one batch axis: fold any batch shape into it.
        event = out_shape[-3:].as_list()
        batch = tf.shape(x)[:-3]
        y = op(tf.reshape(x, [-1] + x.shape[-3:].as_list()), self._factor)
        return tf.reshape(y, tf.concat([batch, event], axis=0))

    def _forward(self, x):
        return self._apply(x, tf.nn.space_to_depth, self._squeezed_shape(x.shape))

    def _inverse(self, y):
        return self._apply(y, tf.nn.depth_to_space, self._unsqueezed_shape(y.shape))

    def _forward_log_det_jacobian(self, x):
        return tf.zeros([], dtype=self.dtype)

    def _inverse_log_det_jacobian(self, y):
        return tf.zeros([], dtype=self.dtype)

    def _forward_event_shape(self, input_shape):
        return self._squeezed_shape(input_shape)

    def _inverse_event_shape(self, output_shape):
        return self._unsqueezed_shape(output_shape)

    def _forward_event_shape_tensor(self, input_shape):
        f = self._factor
        return tf.concat([input_shape[:-3], [input_shape[-3] // f, input_shape[-2] // f, input_shape[-1] * f * f]], 0)

    def _inverse_event_shape_tensor(self, output_shape):
        f = self._factor
        return tf.concat([output_shape[:-3], [output_shape[-3] * f, output_shape[-2] * f, output_shape[-1] // (f * f)]], 0)

"""NICE's diagonal scaling layer."""
import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow.bijectors._util import FusedLogDetMixin, check_event_shape, keras_variables

tfb = tfp.bijectors


class DiagonalScaleParameters(keras.layers.Layer):
    """Keras holder of `DiagonalScale`'s `log_scale`, of the event's shape."""

    def __init__(self, event_shape, **kwargs):
        super().__init__(**kwargs)
        self.event_shape = tuple(int(d) for d in event_shape)
        self.log_scale = self.add_weight(shape=self.event_shape, initializer="zeros", name="log_scale")
        self.built = True

    def get_config(self):
        return {**super().get_config(), "event_shape": self.event_shape}


class DiagonalScale(FusedLogDetMixin, tfb.Bijector):
    """NICE's scaling layer: `x = z * exp(s)` elementwise; `log|det J| = sum(s)`.

    It lets a volume-preserving stack of additive couplings give more weight to some
    dimensions than to others.

    Args:
      event_shape: tuple of Python ints, `[D]` or `[H, W, C]`.
      validate_args: TFP flag.
      dtype: float dtype.
      name: name scope.

    References:
      Dinh, Krueger & Bengio, "NICE: Non-linear Independent Components Estimation", ICLR 2015,
      section 3.3.
    """

    def __init__(self, event_shape, validate_args=False, dtype=tf.float32, name="diagonal_scale"):
        parameters = dict(locals())
        with tf.name_scope(name) as scope_name:
            self._event_shape_in = tuple(int(d) for d in event_shape)
            self._params = DiagonalScaleParameters(self._event_shape_in, dtype=tf.as_dtype(dtype).name, name=name)
            self._variables = keras_variables(self._params)
            (self._log_scale,) = self._variables
            super().__init__(forward_min_event_ndims=len(self._event_shape_in), validate_args=validate_args,
                             dtype=dtype, parameters=parameters, name=scope_name)

    @property
    def parameters_layer(self):
        return self._params

    def _forward(self, z):
        check_event_shape(z, self._event_shape_in, self.name)
        return z * tf.exp(self._log_scale)

    def _inverse(self, x):
        check_event_shape(x, self._event_shape_in, self.name)
        return x * tf.exp(-self._log_scale)

    def _forward_log_det_jacobian(self, z):
        check_event_shape(z, self._event_shape_in, self.name)
        return tf.reduce_sum(self._log_scale)

    def _inverse_log_det_jacobian(self, x):
        check_event_shape(x, self._event_shape_in, self.name)
        return -tf.reduce_sum(self._log_scale)

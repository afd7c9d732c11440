"""Glow's learned top prior: `x = mu + sigma * z` with learned `mu`, `log sigma` (openai/glow's `learntop`)."""
import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow.bijectors._util import FusedLogDetMixin, check_event_shape, keras_variables
from tfp_glow.bijectors.bounds import bounded_log_scale
from tfp_glow.bijectors.conditioning import ContextProjection, broadcast_context, refuse_context, require_context

tfb = tfp.bijectors


class LearnedPriorParameters(keras.layers.Layer):
    """Keras holder of `LearnedPrior`'s `mean` and raw `log_scale`, each of the event shape."""

    def __init__(self, event_shape, **kwargs):
        super().__init__(**kwargs)
        self.event_shape = tuple(int(d) for d in event_shape)
        self.mean = self.add_weight(shape=self.event_shape, initializer="zeros", name="mean")
        self.log_scale = self.add_weight(shape=self.event_shape, initializer="zeros", name="log_scale")
        self.built = True

    def get_config(self):
        return {**super().get_config(), "event_shape": self.event_shape}


class LearnedPrior(FusedLogDetMixin, tfb.Bijector):
    """Learned top prior: `x = mu + sigma * z` elementwise with learned `mu`, `log sigma` of
    the event's shape; `log|det J| = sum log sigma`.

    With a standard normal base, `x ~ N(mu, sigma^2)` (Glow's `learntop`, here one parameter
    per position and channel). `log sigma` is softly bounded by `log_scale_bound`.

    Args:
      event_shape: tuple of Python ints, e.g. `[H, W, C]` or `[D]`.
      log_scale_bound: bound of `|log sigma|`.
      validate_args: TFP flag.
      dtype: float dtype; stays float32 under mixed precision.
      name: name scope.
      context_dim: size `K` of a context `c [*batch, K]` (TFP kwarg `conditional_input`):
        class-conditional as openai/glow's `ycond`, `(mu, log sigma) += W c + b`
        (zero-initialised; per channel, broadcast over H, W, for an image event `[H, W, C]`;
        per entry for a vector event `[D]`).

    References:
      Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", NeurIPS 2018.
    """

    def __init__(self, event_shape, log_scale_bound=5.0, validate_args=False, dtype=tf.float32,
                 name="learned_prior", context_dim=0):
        parameters = dict(locals())
        with tf.name_scope(name) as scope_name:
            self._event_shape_in = tuple(int(d) for d in event_shape)
            self._params = LearnedPriorParameters(self._event_shape_in, dtype=tf.as_dtype(dtype).name, name=name)
            self._variables = keras_variables(self._params)
            self._mean, self._raw_log_scale = self._variables
            self._bound = float(log_scale_bound)
            self._context_dim = int(context_dim)
            self._is_conditional = self._context_dim > 0
            self._context_projection = None
            if self._context_dim:
                per = self._event_shape_in[-1] if len(self._event_shape_in) == 3 else int(
                    tf.TensorShape(self._event_shape_in).num_elements())
                self._context_projection = ContextProjection(2 * per, dtype=tf.as_dtype(dtype).name,
                                                             name=f"{name}_context")
                self._context_projection(tf.zeros((1, self._context_dim), dtype=dtype))
            self._context_variables = keras_variables(self._context_projection)
            super().__init__(forward_min_event_ndims=len(self._event_shape_in), validate_args=validate_args,
                             dtype=dtype, parameters=parameters, name=scope_name)

    @property
    def parameters_layer(self):
        return self._params

    def _log_sigma(self):
        return bounded_log_scale(self._raw_log_scale, self._bound)

    def _params_for(self, t, context):
        """`(mu, log sigma)`: of the event's shape, or `[*batch, *event]` with a context."""
        if not self._context_dim:
            refuse_context(context, self.name)
            return self._mean, self._log_sigma()
        rank = len(self._event_shape_in)
        c = broadcast_context(require_context(context, self._context_dim, self.name), t, rank)
        h = tf.cast(self._context_projection(c), self.dtype)
        if rank == 3:  # per channel, broadcast over H, W
            d_mean, d_raw = tf.split(h[..., None, None, :], 2, axis=-1)
        else:
            shape = tf.concat([tf.shape(h)[:-1], list(self._event_shape_in)], axis=0)
            d_mean, d_raw = (tf.reshape(v, shape) for v in tf.split(h, 2, axis=-1))
        return self._mean + d_mean, bounded_log_scale(self._raw_log_scale + d_raw, self._bound)

    def _forward(self, z, conditional_input=None):
        check_event_shape(z, self._event_shape_in, self.name)
        mean, log_sigma = self._params_for(z, conditional_input)
        return mean + tf.exp(log_sigma) * z

    def _inverse(self, x, conditional_input=None):
        check_event_shape(x, self._event_shape_in, self.name)
        mean, log_sigma = self._params_for(x, conditional_input)
        return (x - mean) * tf.exp(-log_sigma)

    def _forward_log_det_jacobian(self, z, conditional_input=None):
        check_event_shape(z, self._event_shape_in, self.name)
        if not self._context_dim:
            return tf.reduce_sum(self._log_sigma())
        log_sigma = self._params_for(z, conditional_input)[1]
        return tf.reduce_sum(log_sigma, axis=list(range(-len(self._event_shape_in), 0)))

    def _inverse_log_det_jacobian(self, x, conditional_input=None):
        check_event_shape(x, self._event_shape_in, self.name)
        if not self._context_dim:
            return -tf.reduce_sum(self._log_sigma())
        log_sigma = self._params_for(x, conditional_input)[1]
        return -tf.reduce_sum(log_sigma, axis=list(range(-len(self._event_shape_in), 0)))

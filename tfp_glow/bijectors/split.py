"""Multi-scale split with a learned conditional Gaussian prior (Glow's split2d), and the
learned top prior."""
import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow import networks
from tfp_glow.bijectors import walk
from tfp_glow.bijectors._util import AugmentedBijectorMixin, FusedLogDetMixin, apply_on_events, check_event_shape, keras_variables

tfb = tfp.bijectors


def bounded_log_scale(raw, bound):
    """`bound * tanh(raw / bound)`: the identity near 0, never beyond +-bound."""
    return bound * tf.math.tanh(raw / bound)


class Split(AugmentedBijectorMixin, tfb.Bijector):
    """Factor out half of the channels under a learned conditional Gaussian prior.

    On an event `[H, W, C]` split into `z_1 = z[..., :C/2]` and `z_2 = z[..., C/2:]`:
    `x_1 = inner(z_1)`, `x_2 = mu(x_1) + sigma(x_1) * z_2`, with `(mu, log sigma)` from one
    zero-initialised convolution of `x_1` (`log sigma` softly bounded by `log_scale_bound`);
    `log|det J| = log|det J_inner| + sum log sigma`. With a standard normal base this is
    Glow's split2d: `x_2 ~ N(mu(x_1), sigma(x_1)^2)`, and `inner` (the deeper levels) acts on
    `x_1` only. The event keeps its shape, so a whole multi-scale flow stays one bijector over
    one `[H, W, C]` latent.

    Args:
      event_shape: `[H, W, C]`, Python ints, `C` even.
      inner: a shape-preserving bijector on `[H, W, C/2]` (the deeper levels), or `None`.
      conditioner: a Keras layer or callable mapping `[N, H, W, C/2]` to `[N, H, W, C]`
        (mean, raw log-scale); defaults to a zero-initialised 3x3 convolution in float32.
      learn_prior: with `False`, `mu = 0` and `sigma = 1`: RealNVP's plain factoring-out.
      log_scale_bound: bound of `|log sigma|`.
      validate_args: TFP flag.
      dtype: float dtype; the prior stays in it under mixed precision.
      name: name scope.

    References:
      Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", NeurIPS 2018.
      Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017 (multi-scale).
    """


    def __init__(self, event_shape, inner=None, conditioner=None, learn_prior=True, log_scale_bound=5.0,
                 validate_args=False, dtype=tf.float32, name="split"):
        parameters = dict(locals())
        with tf.name_scope(name) as scope_name:
            self._event_shape_in = tuple(int(d) for d in event_shape)
            if len(self._event_shape_in) != 3:
                raise ValueError(f"Split expects an event [H, W, C]; received event shape {list(event_shape)}.")
            h, w, c = self._event_shape_in
            if c < 2 or c % 2:
                raise ValueError(
                    f"Split halves the channels and needs an even C >= 2; received event shape [{h}, {w}, {c}].")
            self._half = c // 2
            if inner is not None:
                got = tuple(tf.TensorShape(inner.forward_event_shape([h, w, self._half])).as_list())
                if got != (h, w, self._half):
                    raise ValueError(
                        f"Split's inner bijector must keep the event shape {[h, w, self._half]}; "
                        f"it maps it to {list(got)}.")
            self._inner = inner
            if not learn_prior and conditioner is not None:
                raise ValueError("Split: a conditioner was given but learn_prior=False.")
            if learn_prior and conditioner is None:
                conditioner = networks.zero_conv(2 * self._half, dtype=tf.as_dtype(dtype).name,
                                                 name=f"{name}_prior")
            self._conditioner = conditioner
            if conditioner is not None:
                probe = conditioner(tf.zeros((1, h, w, self._half), dtype=dtype))
                if tuple(probe.shape[1:]) != (h, w, 2 * self._half):
                    raise ValueError(
                        f"Split's conditioner maps {[None, h, w, self._half]} to {[None, *probe.shape[1:]]}; "
                        f"expected {[None, h, w, 2 * self._half]}.")
            self._conditioner_variables = keras_variables(conditioner)
            self._bound = float(log_scale_bound)
            super().__init__(forward_min_event_ndims=3, validate_args=validate_args, dtype=dtype,
                             parameters=parameters, name=scope_name)

    @property
    def inner(self):
        return self._inner

    @property
    def conditioner(self):
        return self._conditioner

    def _prior(self, x1):
        if self._conditioner is None:
            return tf.zeros_like(x1), tf.zeros_like(x1)
        h = tf.cast(apply_on_events(self._conditioner, x1, 3), self.dtype)
        mean, raw = tf.split(h, 2, axis=-1)
        return mean, bounded_log_scale(raw, self._bound)

    def _augmented_forward(self, z):
        check_event_shape(z, self._event_shape_in, self.name)
        z1, z2 = tf.split(z, 2, axis=-1)
        if self._inner is None:
            x1, ldj = z1, 0.0
        else:
            x1, ldj = walk.forward_and_log_det(self._inner, z1, 3)
        mean, log_sigma = self._prior(x1)
        x2 = mean + tf.exp(log_sigma) * z2
        ldj = ldj + tf.reduce_sum(log_sigma, axis=[-3, -2, -1])
        return tf.concat([x1, x2], axis=-1), {"fldj": ldj, "ildj": -ldj}

    def _augmented_inverse(self, x):
        check_event_shape(x, self._event_shape_in, self.name)
        x1, x2 = tf.split(x, 2, axis=-1)
        mean, log_sigma = self._prior(x1)
        z2 = (x2 - mean) * tf.exp(-log_sigma)
        ildj = -tf.reduce_sum(log_sigma, axis=[-3, -2, -1])
        if self._inner is None:
            z1 = x1
        else:
            z1, inner_ildj = walk.inverse_and_log_det(self._inner, x1, 3)
            ildj = ildj + inner_ildj
        return tf.concat([z1, z2], axis=-1), {"ildj": ildj, "fldj": -ildj}

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

    References:
      Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", NeurIPS 2018.
    """

    def __init__(self, event_shape, log_scale_bound=5.0, validate_args=False, dtype=tf.float32,
                 name="learned_prior"):
        parameters = dict(locals())
        with tf.name_scope(name) as scope_name:
            self._event_shape_in = tuple(int(d) for d in event_shape)
            self._params = LearnedPriorParameters(self._event_shape_in, dtype=tf.as_dtype(dtype).name, name=name)
            self._variables = keras_variables(self._params)
            self._mean, self._raw_log_scale = self._variables
            self._bound = float(log_scale_bound)
            super().__init__(forward_min_event_ndims=len(self._event_shape_in), validate_args=validate_args,
                             dtype=dtype, parameters=parameters, name=scope_name)

    @property
    def parameters_layer(self):
        return self._params

    def _log_sigma(self):
        return bounded_log_scale(self._raw_log_scale, self._bound)

    def _forward(self, z):
        check_event_shape(z, self._event_shape_in, self.name)
        return self._mean + tf.exp(self._log_sigma()) * z

    def _inverse(self, x):
        check_event_shape(x, self._event_shape_in, self.name)
        return (x - self._mean) * tf.exp(-self._log_sigma())

    def _forward_log_det_jacobian(self, z):
        check_event_shape(z, self._event_shape_in, self.name)
        return tf.reduce_sum(self._log_sigma())

    def _inverse_log_det_jacobian(self, x):
        check_event_shape(x, self._event_shape_in, self.name)
        return -tf.reduce_sum(self._log_sigma())

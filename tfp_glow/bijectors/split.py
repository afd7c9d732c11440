"""Multi-scale split with a learned conditional Gaussian prior (Glow's split2d)."""
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow.bijectors import networks
from tfp_glow.bijectors import walk
from tfp_glow.bijectors._util import AugmentedBijectorMixin, apply_on_events, check_event_shape, keras_variables
from tfp_glow.bijectors.bounds import bounded_log_scale
from tfp_glow.bijectors.conditioning import (CONDITIONAL_INPUT, ContextProjection, broadcast_context, is_conditional,
                                             refuse_context, require_context)

tfb = tfp.bijectors


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
      context_dim: size `K` of a context `c [*batch, K]` (TFP kwarg `conditional_input`): the
        prior becomes class-conditional as openai/glow's `ycond`, `(mu, log sigma) +=
        W c + b` (zero-initialised, per channel, broadcast over H, W). The context is also
        handed to a conditional `inner`.

    References:
      Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", NeurIPS 2018.
      Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017 (multi-scale).
    """


    def __init__(self, event_shape, inner=None, conditioner=None, learn_prior=True, log_scale_bound=5.0,
                 validate_args=False, dtype=tf.float32, name="split", context_dim=0):
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
            self._context_dim = int(context_dim)
            self._context_projection = None
            if self._context_dim:
                self._context_projection = ContextProjection(2 * self._half, dtype=tf.as_dtype(dtype).name,
                                                             name=f"{name}_context")
                self._context_projection(tf.zeros((1, self._context_dim), dtype=dtype))
            self._context_variables = keras_variables(self._context_projection)
            self._inner_conditional = inner is not None and is_conditional(inner)
            self._is_conditional = bool(self._context_dim) or self._inner_conditional
            self._bound = float(log_scale_bound)
            super().__init__(forward_min_event_ndims=3, validate_args=validate_args, dtype=dtype,
                             parameters=parameters, name=scope_name)

    @property
    def inner(self):
        return self._inner

    @property
    def conditioner(self):
        return self._conditioner

    def _inner_kwargs(self, context):
        if not self._is_conditional:
            refuse_context(context, self.name)
        return {CONDITIONAL_INPUT: context} if (self._inner_conditional and context is not None) else {}

    def _prior(self, x1, context=None):
        if self._conditioner is None:
            h = tf.zeros(tf.concat([tf.shape(x1)[:-1], [2 * self._half]], axis=0), self.dtype)
        else:
            h = tf.cast(apply_on_events(self._conditioner, x1, 3), self.dtype)
        if self._context_dim:
            c = broadcast_context(require_context(context, self._context_dim, self.name), x1, 3)
            h = h + tf.cast(self._context_projection(c), self.dtype)[..., None, None, :]
        mean, raw = tf.split(h, 2, axis=-1)
        return mean, bounded_log_scale(raw, self._bound)

    def _augmented_forward(self, z, conditional_input=None):
        check_event_shape(z, self._event_shape_in, self.name)
        z1, z2 = tf.split(z, 2, axis=-1)
        if self._inner is None:
            x1, ldj = z1, 0.0
        else:
            x1, ldj = walk.forward_and_log_det(self._inner, z1, 3, **self._inner_kwargs(conditional_input))
        mean, log_sigma = self._prior(x1, conditional_input)
        x2 = mean + tf.exp(log_sigma) * z2
        ldj = ldj + tf.reduce_sum(log_sigma, axis=[-3, -2, -1])
        return tf.concat([x1, x2], axis=-1), {"fldj": ldj, "ildj": -ldj}

    def _augmented_inverse(self, x, conditional_input=None):
        check_event_shape(x, self._event_shape_in, self.name)
        x1, x2 = tf.split(x, 2, axis=-1)
        mean, log_sigma = self._prior(x1, conditional_input)
        z2 = (x2 - mean) * tf.exp(-log_sigma)
        ildj = -tf.reduce_sum(log_sigma, axis=[-3, -2, -1])
        if self._inner is None:
            z1 = x1
        else:
            z1, inner_ildj = walk.inverse_and_log_det(self._inner, x1, 3, **self._inner_kwargs(conditional_input))
            ildj = ildj + inner_ildj
        return tf.concat([z1, z2], axis=-1), {"ildj": ildj, "fldj": -ildj}

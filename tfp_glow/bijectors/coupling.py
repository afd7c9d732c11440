"""Coupling bijectors: additive (NICE) and affine (RealNVP, Glow).

Direction: `forward` maps latent `z` to data `x` (sampling); `inverse` maps data to latent.
"""
import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow.bijectors import networks
from tfp_glow.bijectors._util import AugmentedBijectorMixin, apply_on_events, check_event_shape, keras_variables, layer_dtype
from tfp_glow.bijectors.bounds import bounded_log_scale
from tfp_glow.bijectors.conditioning import CONDITIONAL_INPUT, broadcast_context, refuse_context, require_context
from tfp_glow.bijectors.masks import Mask

tfb = tfp.bijectors

SCALE_FUNCTIONS = ("sigmoid", "tanh")


#: Default lower bound of Glow's density-pass scale `sigma` (so the sampling gain is at most 20).
DEFAULT_SCALE_MIN = 0.05


def log_scale_from_raw(h, scale_fn, scale_bound, scale_min=DEFAULT_SCALE_MIN):
    """Bounded sampling-direction log-scale `log s` from a raw network output `h`.

    `sigmoid` (Glow): `s = 1 / sigma` with `sigma = s_min + (1 - s_min) * sigmoid(h + 2)`, so
    the density pass (data -> latent) multiplies by `sigma` in `(s_min, 1)` and can only
    contract, as in openai/glow (`z2 *= sigmoid(h + 2)`) and normflows; sampling divides by
    `sigma` and its gain is at most `1 / s_min`. `log s = -log sigma` lies in `(0, -log s_min)`.
    `tanh` (RealNVP): `log s = b * tanh(h / b)`, so `s` lies in `(e^-b, e^b)` and is 1 at `h = 0`.
    Neither overflows for any finite `h`.
    """
    if scale_fn == "sigmoid":
        if scale_min == 0.0:
            return -tf.math.log_sigmoid(h + 2.0)
        return -tf.math.log(scale_min + (1.0 - scale_min) * tf.math.sigmoid(h + 2.0))
    return bounded_log_scale(h, scale_bound)


class _Coupling(AugmentedBijectorMixin, tfb.Bijector):
    """Shared machinery: a mask, one conditioner call, cached log-dets."""

    _n_params = 1  # conditioner channels per transformed channel

    def __init__(self, event_shape, mask, parity, conditioner, hidden, validate_args, dtype,
                 name, parameters, context_dim=0):
        with tf.name_scope(name) as scope_name:
            self._event_shape_in = tuple(int(d) for d in event_shape)
            self._mask = Mask(mask, self._event_shape_in, parity)
            if not (isinstance(context_dim, int) and context_dim >= 0):
                raise ValueError(f"context_dim must be an int >= 0; received {context_dim!r}.")
            self._context_dim = int(context_dim)
            self._is_conditional = self._context_dim > 0
            # the context is concatenated to the conditioner's input (broadcast over H, W)
            in_shape = self._mask.cond_shape[:-1] + (self._mask.cond_shape[-1] + self._context_dim,)
            out_shape = self._mask.transformed_shape[:-1] + (
                self._mask.transformed_shape[-1] * self._n_params,)
            if conditioner is None:  # named after this step: weight paths read like the model
                conditioner = self._default_conditioner(out_shape[-1], hidden, layer_dtype(dtype), name)
            if not callable(conditioner):
                raise ValueError(f"conditioner must be a Keras layer or a callable; received {conditioner!r}.")
            self._conditioner = conditioner
            # Build now: the weights must exist before Keras or tf.Module can collect them.
            probe = conditioner(tf.zeros((1,) + in_shape, dtype=dtype))
            got = tuple(probe.shape[1:])
            if got != out_shape:
                raise ValueError(
                    f"{name}: the conditioner maps {[None, *in_shape]} to "
                    f"{[None, *got]}; expected {[None, *out_shape]}.")
            self._conditioner_variables = keras_variables(conditioner)
            super().__init__(forward_min_event_ndims=len(self._event_shape_in), validate_args=validate_args,
                             dtype=dtype, parameters=parameters, name=scope_name)

    def _default_conditioner(self, out_channels, hidden, dtype, name):
        if len(self._event_shape_in) == 3:
            return networks.conv_net(out_channels, hidden_channels=hidden or 512, dtype=dtype, name=name)
        return networks.mlp_net(out_channels, hidden_units=hidden or (256, 256), dtype=dtype, name=name)

    @property
    def conditioner(self):
        return self._conditioner

    @property
    def mask(self):
        return self._mask

    @property
    def context_dim(self):
        return self._context_dim

    def _with_context(self, cond, x, context):
        """The conditioner's input: `cond`, with the context `[*batch, K]` concatenated on the
        last axis (broadcast over the positions of an image)."""
        if not self._is_conditional:
            refuse_context(context, self.name)
            return cond
        rank = len(self._event_shape_in)
        c = broadcast_context(require_context(context, self._context_dim, self.name), x, rank)
        c = tf.cast(c, cond.dtype)
        if rank > 1:
            c = c[..., None, None, :] * tf.ones(self._event_shape_in[:-1] + (1,), cond.dtype)
        return tf.concat([cond, c], axis=-1)

    def _raw(self, cond):
        h = apply_on_events(self._conditioner, cond, len(self._event_shape_in))
        return tf.cast(h, self.dtype)  # the network may run in bf16/fp16; the flow stays float32

    def _reduce(self, v):
        return tf.reduce_sum(v, axis=list(range(-len(self._event_shape_in), 0)))

    def _augmented_forward(self, z, conditional_input=None):
        check_event_shape(z, self._event_shape_in, self.name)
        cond, z_b = self._mask.split(z)
        x_b, ldj = self._transform(z_b, self._raw(self._with_context(cond, z, conditional_input)), inverse=False)
        x = self._mask.merge(z, cond, x_b)
        return x, {"fldj": ldj, "ildj": -ldj}

    def _augmented_inverse(self, x, conditional_input=None):
        check_event_shape(x, self._event_shape_in, self.name)
        cond, x_b = self._mask.split(x)
        z_b, ldj = self._transform(x_b, self._raw(self._with_context(cond, x, conditional_input)), inverse=True)
        z = self._mask.merge(x, cond, z_b)
        return z, {"ildj": -ldj, "fldj": ldj}

    def _forward_event_shape(self, input_shape):
        return input_shape

    def _inverse_event_shape(self, output_shape):
        return output_shape


class AdditiveCoupling(_Coupling):
    """NICE's additive coupling: `x_a = z_a`, `x_b = z_b + t(z_a)`; `log|det J| = 0`.

    Args:
      event_shape: `[H, W, C]` for images or `[D]` for vectors (Python ints).
      mask: `checkerboard` or `channel` for images; `half` or `alternate` for vectors.
      parity: 0 or 1, swaps which part conditions.
      conditioner: a Keras layer or callable mapping `[N, *cond_shape]` to
        `[N, *transformed_shape]` (`t`). Defaults to `networks.conv_net` / `networks.mlp_net`
        with a zero-initialised last layer.
      hidden: hidden width (int) for the default conv net, or a tuple of units for the MLP.
      validate_args: TFP flag.
      dtype: float dtype of the flow.
      name: name scope.
      context_dim: size `K` of a context `c [*batch, K]` (TFP kwarg `conditional_input`)
        concatenated to the conditioner's input, broadcast over H, W: `t(z_a, c)`. 0: none.

    References:
      Dinh, Krueger & Bengio, "NICE: Non-linear Independent Components Estimation", ICLR 2015.
    """

    _n_params = 1

    def __init__(self, event_shape, mask="checkerboard", parity=0, conditioner=None, hidden=None,
                 validate_args=False, dtype=tf.float32, name="additive_coupling", context_dim=0):
        parameters = dict(locals())
        super().__init__(event_shape, mask, parity, conditioner, hidden, validate_args, dtype, name,
                         parameters, context_dim)

    def _transform(self, v, h, inverse):
        shift = self._mask.select_transformed(h)
        out = v - shift if inverse else v + shift
        return out, tf.zeros(tf.shape(v)[:-len(self._event_shape_in)], dtype=v.dtype)


class AffineCoupling(_Coupling):
    """Affine coupling: `x_a = z_a`, `x_b = z_b * s(z_a) + t(z_a)`; `log|det J| = sum log s`.

    One conditioner call gives `2 * C_b` channels: the first half is the shift `t`, the second
    the raw scale `h`, turned into a bounded `s > 0` by `scale_fn` (see `log_scale_from_raw`).
    With `sigmoid` (Glow) the density pass is openai/glow's: `z_b = (x_b - t) * sigma`,
    `sigma = s_min + (1 - s_min) sigmoid(h + 2)` in `(s_min, 1)`, so a coupling can only
    contract data on its way to the latent (it cannot buy likelihood by expanding without
    bound), and sampling's `x_b = z_b / sigma + t` has a gain of at most `1 / s_min`.

    Args:
      event_shape: `[H, W, C]` for images or `[D]` for vectors (Python ints).
      mask: `checkerboard` or `channel` for images; `half` or `alternate` for vectors.
      parity: 0 or 1, swaps which part conditions.
      conditioner: a Keras layer or callable mapping `[N, *cond_shape]` to
        `[N, *transformed_shape[:-1], 2 * transformed_shape[-1]]`. Defaults to a zero-initialised
        `networks.conv_net` (images) or `networks.mlp_net` (vectors).
      hidden: hidden width (int) for the default conv net, or a tuple of units for the MLP.
      scale_fn: `sigmoid` (Glow, `1 / s = s_min + (1 - s_min) sigmoid(h + 2)`) or `tanh`
        (RealNVP-style `s = exp(b * tanh(h / b))`, the identity at initialisation).
      scale_bound: `b` for `tanh`.
      scale_min: `s_min` in `[0, 1)` for `sigmoid`: the smallest density-pass scale, which
        bounds the sampling gain by `1 / s_min` (0 gives openai/glow's unbounded sampling).
      validate_args: TFP flag.
      dtype: float dtype of the flow.
      name: name scope.
      context_dim: size `K` of a context `c [*batch, K]` (TFP kwarg `conditional_input`)
        concatenated to the conditioner's input, broadcast over H, W: `s(z_a, c)`, `t(z_a, c)`.

    References:
      Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017.
      Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", NeurIPS 2018.
    """

    _n_params = 2

    def __init__(self, event_shape, mask="checkerboard", parity=0, conditioner=None, hidden=None,
                 scale_fn="sigmoid", scale_bound=2.0, scale_min=DEFAULT_SCALE_MIN, validate_args=False,
                 dtype=tf.float32, name="affine_coupling", context_dim=0):
        parameters = dict(locals())
        if scale_fn not in SCALE_FUNCTIONS:
            raise ValueError(f"scale_fn must be one of {SCALE_FUNCTIONS}; received {scale_fn!r}.")
        if not (isinstance(scale_min, (int, float)) and 0.0 <= scale_min < 1.0):
            raise ValueError(f"scale_min must be a float in [0, 1); received {scale_min!r}.")
        if not (isinstance(scale_bound, (int, float)) and scale_bound > 0):
            raise ValueError(f"scale_bound must be a positive float; received {scale_bound!r}.")
        self._scale_fn, self._scale_bound, self._scale_min = scale_fn, float(scale_bound), float(scale_min)
        super().__init__(event_shape, mask, parity, conditioner, hidden, validate_args, dtype, name,
                         parameters, context_dim)

    def _transform(self, v, h, inverse):
        shift, raw = tf.split(h, 2, axis=-1)
        log_s = self._mask.select_transformed(
            log_scale_from_raw(raw, self._scale_fn, self._scale_bound, self._scale_min))
        shift = self._mask.select_transformed(shift)
        out = (v - shift) * tf.exp(-log_s) if inverse else v * tf.exp(log_s) + shift
        return out, self._reduce(log_s)

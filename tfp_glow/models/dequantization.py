"""Variational dequantization (Flow++): a learned noise distribution `q(u | x)` on `[0, 1)^D`.

Uniform dequantization scores a discrete image `x` (levels in `[0, 2^n)`) by the density of
`x + u`, `u ~ U[0, 1)^D`; that is a lower bound on `log P(x)`, loose wherever the model's
density is not flat across a cell. Variational dequantization learns the noise:

    -log P(x) <= E_{u ~ q(.|x)} [ log q(u | x) - log p_level(x + u) ],

where `p_level` is the flow's density in level units. With `y = (x + u) / 2^n - 1/2` the
flow's input, `log p_level(x + u) = log p(y) - D n log 2` (the `/ 2^n` scaling), so per
example

    nll = -log p(y) + D n log 2 + log q(u | x)   nats,   bits/dim = nll / (D ln 2),

the uniform figure plus `log q(u | x)` (which is 0 for the uniform `q`).

`q(u | x)` here is a small conditional flow on a standard *logistic* base:
`eps ~ Logistic(0, 1)`, `eps' = f_x(eps)` (an elementwise conditional affine map, then
conditional affine checkerboard couplings whose networks also see features of `x`), and
`u = sigmoid(eps')`. Then

    log q(u | x) = log Logistic(eps) - log|det df_x/deps| - sum log sigmoid'(eps').

Every last layer starts at zero, so a new `q` is `sigmoid(eps)` with `eps` logistic: exactly
`U(0, 1)`, and `log q = 0` for every draw. A model switched to variational dequantization
starts from the uniform-dequantization figure and training can only tighten the bound. (Flow++
uses a Gaussian base; the logistic base makes the identity initialisation the uniform `q`.)

References:
  Ho, Chen, Srinivas, Duan & Abbeel, "Flow++: Improving Flow-Based Generative Models with
  Variational Dequantization and Architecture Design", ICML 2019, section 3.1.
  Theis, van den Oord & Bethge, "A note on the evaluation of generative models", ICLR 2016.
"""
import keras
import numpy as np
import tensorflow as tf

from tfp_glow.bijectors.bounds import bounded_log_scale
from tfp_glow.bijectors.masks import Mask

__all__ = ["DEQUANTIZATIONS", "VariationalDequantizer", "logistic_log_prob", "log_sigmoid_derivative"]

DEQUANTIZATIONS = ("uniform", "variational")

# Keeps logit(v) finite for float32 v in [0, 1).
_V_EPS = 1e-6


def logistic_log_prob(eps):
    """`log Logistic(eps; 0, 1) = -softplus(-eps) - softplus(eps)` elementwise."""
    return -tf.math.softplus(-eps) - tf.math.softplus(eps)


def log_sigmoid_derivative(t):
    """`log sigmoid'(t) = log sigmoid(t) + log sigmoid(-t)`, the same expression (stable)."""
    return -tf.math.softplus(-t) - tf.math.softplus(t)


class VariationalDequantizer(keras.layers.Layer):
    """`q(u | x)` over the dequantization noise of `[H, W, C]` images; see the module docstring.

    Args:
      event_shape: `[H, W, C]`, Python ints (H * W >= 2).
      n_bits: bit depth of the levels `x`.
      couplings: conditional checkerboard couplings after the elementwise affine map.
      hidden: channels of the feature and coupling networks.
      scale_bound: log-scales are `b tanh(h / b)`.
      **kwargs: `keras.layers.Layer` arguments.

    Raises:
      ValueError: an event that is not `[H, W, C]`, or bad sizes.
    """

    def __init__(self, event_shape, n_bits, couplings=2, hidden=32, scale_bound=3.0, **kwargs):
        super().__init__(**kwargs)
        self.event_shape = tuple(int(d) for d in event_shape)
        if len(self.event_shape) != 3:
            raise ValueError(f"variational dequantization works on images [H, W, C]; received event shape "
                             f"{list(self.event_shape)}.")
        if not (isinstance(n_bits, (int, np.integer)) and 1 <= n_bits <= 8):
            raise ValueError(f"n_bits must be an int in [1, 8]; received {n_bits!r}.")
        if not (isinstance(couplings, (int, np.integer)) and couplings >= 0):
            raise ValueError(f"couplings must be an int >= 0; received {couplings!r}.")
        if not (isinstance(hidden, (int, np.integer)) and hidden >= 1):
            raise ValueError(f"hidden must be a positive int; received {hidden!r}.")
        self.n_bits, self.couplings, self.hidden = int(n_bits), int(couplings), int(hidden)
        self.scale_bound = float(scale_bound)
        c = self.event_shape[-1]
        self._masks = [Mask("checkerboard", self.event_shape, parity=k % 2) for k in range(self.couplings)]
        zero = dict(kernel_initializer="zeros", bias_initializer="zeros")
        # features of the discrete image, shared by every step
        self.features = keras.Sequential([
            keras.layers.Conv2D(self.hidden, 3, padding="same", activation="relu", name="conv_in"),
            keras.layers.Conv2D(self.hidden, 3, padding="same", activation="relu", name="conv_hidden"),
        ], name="features")
        self.elementwise = keras.layers.Conv2D(2 * c, 3, padding="same", name="elementwise", **zero)
        for k in range(self.couplings):
            # one attribute each: tf.train.Checkpoint does not follow a list attribute of a
            # Keras 3 layer, so nets kept in a list would be missing from every checkpoint
            setattr(self, f"coupling{k}", keras.Sequential([
                keras.layers.Conv2D(self.hidden, 3, padding="same", activation="relu", name="conv_in"),
                keras.layers.Conv2D(2 * c, 3, padding="same", name="conv_out", **zero),
            ], name=f"coupling{k}"))
        self.build((None,) + self.event_shape)

    @property
    def coupling_nets(self):
        return [getattr(self, f"coupling{k}") for k in range(self.couplings)]

    def build(self, input_shape):
        shape = (None,) + self.event_shape
        self.features.build(shape)
        feat = (None,) + self.event_shape[:2] + (self.hidden,)
        self.elementwise.build(feat)
        for net in self.coupling_nets:
            net.build((None,) + self.event_shape[:2] + (self.event_shape[-1] + self.hidden,))
        self.built = True

    def _log_scale(self, raw):
        return bounded_log_scale(raw, self.scale_bound)

    def sample_with_log_prob(self, levels, v):
        """`u ~ q(. | levels)` and `log q(u | levels)` per example, by reparametrisation.

        Args:
          levels: float32 `[N, H, W, C]`, integer levels in `[0, 2^n_bits)`.
          v: float32 `[N, H, W, C]` in `[0, 1)`: the base draw, through the logistic inverse
            CDF (`eps = logit(v)`). Uniform `v` gives `eps ~ Logistic(0, 1)`; a fixed `v` gives
            repeatable evaluation figures.

        Returns:
          `(u [N, H, W, C] in (0, 1), log_q [N])`.
        """
        levels = tf.cast(levels, tf.float32)
        v = tf.clip_by_value(tf.cast(v, tf.float32), _V_EPS, 1.0 - _V_EPS)
        eps = tf.math.log(v) - tf.math.log1p(-v)
        log_q = logistic_log_prob(eps)
        cond = levels / float(2 ** self.n_bits - 1) - 0.5
        h = tf.cast(self.features(cond), tf.float32)
        shift, raw = tf.split(tf.cast(self.elementwise(h), tf.float32), 2, axis=-1)
        log_s = self._log_scale(raw)
        eps = eps * tf.exp(log_s) + shift
        log_q = log_q - log_s
        for mask, net in zip(self._masks, self.coupling_nets):
            m = mask.mask(tf.float32)
            out = tf.cast(net(tf.concat([eps * m, h], axis=-1)), tf.float32)
            shift, raw = tf.split(out, 2, axis=-1)
            log_s = self._log_scale(raw) * (1.0 - m)  # only the transformed half moves
            eps = eps * m + (eps * tf.exp(log_s) + shift) * (1.0 - m)
            log_q = log_q - log_s
        u = tf.math.sigmoid(eps)
        log_q = log_q - log_sigmoid_derivative(eps)
        return u, tf.reduce_sum(log_q, axis=[1, 2, 3])

    def call(self, levels, v):
        return self.sample_with_log_prob(levels, v)

    def get_config(self):
        return {**super().get_config(), "event_shape": self.event_shape, "n_bits": self.n_bits,
                "couplings": self.couplings, "hidden": self.hidden, "scale_bound": self.scale_bound}

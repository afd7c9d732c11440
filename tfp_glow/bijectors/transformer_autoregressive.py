"""TarFlow's transformer autoregressive flow step as a TFP bijector.

Direction: `forward` maps latent `z` to data `x` (sampling, sequential over tokens); `inverse`
maps data to latent (the density pass, one parallel transformer call).
"""
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow.bijectors._util import AugmentedBijectorMixin, check_event_shape, keras_variables, layer_dtype
from tfp_glow.bijectors.autoregressive import check_order
from tfp_glow.bijectors.bounds import bounded_log_scale
from tfp_glow.bijectors.conditioning import broadcast_context, mean_class_context, refuse_context, require_context
from tfp_glow.bijectors.transformer import CausalTransformer

tfb = tfp.bijectors

ORDERS = ("identity", "flip")


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive int; received {value!r}.")
    return int(value)


def token_order(order, num_tokens):
    """`order` ("identity", "flip" or a permutation of `range(T)`) as a tuple of ints."""
    if isinstance(order, str):
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS} or a permutation of range({num_tokens}); "
                             f"received {order!r}.")
        ids = tuple(range(num_tokens))
        return ids if order == "identity" else ids[::-1]
    return check_order(order, num_tokens)


class TransformerAutoregressive(AugmentedBijectorMixin, tfb.Bijector):
    """TarFlow step: per patch token `z_t = (x_t - b(x_<t)) exp(-a(x_<t))`; `log|det J_inverse| = -sum a`.

    The image `[H, W, C]` is cut into `T = (H/p)(W/p)` patch tokens of `D = p*p*C` values
    (row-major over patches; inside a token `(i*p + j)*C + c`, `tf.nn.space_to_depth`'s order),
    put in `order`, and a `CausalTransformer` gives `[a, b]` for every token from the tokens
    before it: its outputs are shifted by one token, so token 0 (in the order) gets
    `a = b = 0` (the reference's choice) and passes unchanged. The log-scale is bounded,
    `a = s tanh(a_raw / s)` (`bounds.bounded_log_scale`), on both passes, so neither density
    nor sampling can overflow; `scale_bound=None` leaves it unbounded, as the reference is.

    `inverse` (data -> latent, `log_prob`) is one parallel transformer call under a causal mask.
    `forward` (sampling) runs the tokens one at a time in a `tf.while_loop` with a fixed-shape
    key/value cache (`x_t = z_t exp(a) + b`), XLA-compatible, for any batch size. Under a bf16
    policy the transformer computes in bf16 and the data path stays in `dtype`; sampling then
    inverts the density pass only up to bf16 rounding of its inputs (a token rebuilt to 1e-7
    can round to another bf16 value), which later tokens amplify: sample in float32.

    With `scale_bound=None` and the same weights this is the reference's `MetaBlock` (nvp mode;
    `tests/test_transformer_autoregressive.py` checks it against a fixture), except that the
    reference returns the log-det as a mean over tokens and values (ours is the sum) and does
    not zero its output bias (ours starts as the identity).

    Classifier-free guidance (sampling only): `forward(z, conditional_input=c, guidance=g)`
    runs the network on the context `c` and on the uniform context (the mean class embedding,
    the reference's `y=None`) and uses `a = bound(a_c + g (a_c - a_u))`, `b = b_c + g (b_c -
    b_u)` (the reference's `guide_what="ab"`, on the raw outputs, bounded once): `g = 0` is the
    conditional sample, larger `g` a sample more typical of its class. The guided map is not
    the inverse of the density pass, so its log-det describes the guided sample only.

    Args:
      event_shape: `[H, W, C]` (Python ints); `p` must divide `H` and `W`.
      patch_size: p.
      width: transformer width; divisible by `heads`.
      layers: transformer layers.
      heads: attention heads.
      expansion: MLP hidden size over `width` (4 in the reference).
      order: "identity", "flip" (the reference alternates them block by block) or a permutation
        of `range(T)`: flow position `t` holds patch `order[t]`, conditioned on `order[:t]`.
      context_dim: size K of a context `c [*batch, K]` (TFP kwarg `conditional_input`; one-hot
        labels for K classes, so this is the reference's `num_classes`), embedded and added to
        every token; 0: not conditional. A uniform `c = 1/K` gives the reference's `y=None`
        (the mean class embedding).
      scale_bound: s > 0 bounding `|a|`, or None for the reference's unbounded `exp(-a)`.
      validate_args: TFP flag.
      dtype: float dtype of the flow.
      name: name scope.

    Raises:
      ValueError: `p` does not divide the image, `width % heads != 0`, `order` is not a
        permutation of `range(T)`, or a size is not a positive int.

    References:
      Zhai et al., "Normalizing Flows are Capable Generative Models", 2024, arXiv:2412.06329
      (TarFlow; apple/ml-tarflow's `MetaBlock`).
    """

    def __init__(self, event_shape, patch_size=2, width=64, layers=2, heads=4, expansion=4, order="identity",
                 context_dim=0, scale_bound=2.0, validate_args=False, dtype=tf.float32,
                 name="transformer_autoregressive"):
        parameters = dict(locals())
        with tf.name_scope(name) as scope_name:
            self._event_shape_in = tuple(int(d) for d in event_shape)
            if len(self._event_shape_in) != 3 or min(self._event_shape_in) < 1:
                raise ValueError(f"event_shape must be [H, W, C] of positive ints; received {event_shape!r}.")
            h, w, c = self._event_shape_in
            p = self._patch = _positive_int(patch_size, "patch_size")
            if h % p or w % p:
                raise ValueError(f"patch_size {p} must divide the image height and width; received event "
                                 f"shape {list(self._event_shape_in)}.")
            width, heads = _positive_int(width, "width"), _positive_int(heads, "heads")
            if width % heads:
                raise ValueError(f"width ({width}) must be divisible by heads ({heads}).")
            self._grid = (h // p, w // p)
            self._num_tokens, self._token_size = self._grid[0] * self._grid[1], p * p * c
            self._order = token_order(order, self._num_tokens)
            self._inverse_order = tuple(int(i) for i in np.argsort(self._order))
            if not (isinstance(context_dim, int) and context_dim >= 0):
                raise ValueError(f"context_dim must be an int >= 0; received {context_dim!r}.")
            self._context_dim = int(context_dim)
            self._is_conditional = self._context_dim > 0
            self._takes_guidance = self._is_conditional
            if scale_bound is not None and not (isinstance(scale_bound, (int, float)) and scale_bound > 0):
                raise ValueError(f"scale_bound must be a positive float or None; received {scale_bound!r}.")
            self._scale_bound = None if scale_bound is None else float(scale_bound)
            self._network = CausalTransformer(
                self._token_size, self._num_tokens, width, _positive_int(layers, "layers"), heads,
                expansion=_positive_int(expansion, "expansion"), order=self._order,
                context_dim=self._context_dim, dtype=layer_dtype(dtype), name=name)
            self._network_variables = keras_variables(self._network)
            super().__init__(forward_min_event_ndims=3, validate_args=validate_args, dtype=dtype,
                             parameters=parameters, name=scope_name)

    @property
    def network(self):
        """The `CausalTransformer` conditioner (a Keras layer)."""
        return self._network

    @property
    def order(self):
        return self._order

    @property
    def num_tokens(self):
        return self._num_tokens

    @property
    def context_dim(self):
        return self._context_dim

    # -- layout: images [N, H, W, C] <-> tokens in flow order [N, T, D]
    def _to_tokens(self, x):
        (gh, gw), p, c = self._grid, self._patch, self._event_shape_in[-1]
        t = tf.reshape(x, [-1, gh, p, gw, p, c])
        t = tf.reshape(tf.transpose(t, [0, 1, 3, 2, 4, 5]), [-1, self._num_tokens, self._token_size])
        return tf.gather(t, list(self._order), axis=1)

    def _to_image(self, tokens):
        (gh, gw), p, c = self._grid, self._patch, self._event_shape_in[-1]
        t = tf.reshape(tf.gather(tokens, list(self._inverse_order), axis=1), [-1, gh, gw, p, p, c])
        return tf.reshape(tf.transpose(t, [0, 1, 3, 2, 4, 5]), [-1] + list(self._event_shape_in))

    def _context(self, context, x):
        if not self._is_conditional:
            refuse_context(context, self.name)
            return None
        c = broadcast_context(require_context(context, self._context_dim, self.name), x, 3)
        return tf.cast(tf.reshape(c, [-1, self._context_dim]), self.dtype)

    def _log_scale_and_shift(self, raw):
        raw = tf.cast(raw, self.dtype)  # the network may run in bf16; the flow stays in its dtype
        log_s, shift = raw[..., :self._token_size], raw[..., self._token_size:]
        if self._scale_bound is not None:
            log_s = bounded_log_scale(log_s, self._scale_bound)
        return log_s, shift

    def _finish(self, tokens, ldj, like):
        """Image of `tokens` with the batch shape of `like`, and the log-det `[*batch]`."""
        out = self._to_image(tokens)
        if like.shape.rank == 4:
            return out, ldj
        return tf.reshape(out, tf.shape(like)), tf.reshape(ldj, tf.shape(like)[:-3])

    def _augmented_inverse(self, x, conditional_input=None):
        check_event_shape(x, self._event_shape_in, self.name)
        context = self._context(conditional_input, x)
        tokens = self._to_tokens(x)
        raw = self._network(tokens, context)
        raw = tf.concat([tf.zeros_like(raw[:, :1]), raw[:, :-1]], axis=1)  # token t sees tokens < t
        log_s, shift = self._log_scale_and_shift(raw)
        z = (tokens - shift) * tf.exp(-log_s)
        z, ildj = self._finish(z, -tf.reduce_sum(log_s, axis=[1, 2]), x)
        return z, {"ildj": ildj, "fldj": -ildj}

    def _augmented_forward(self, z, conditional_input=None, guidance=None):
        check_event_shape(z, self._event_shape_in, self.name)
        context = self._context(conditional_input, z)
        latent = self._to_tokens(z)
        n, num = tf.shape(latent)[0], self._num_tokens
        positions = tf.range(num)
        guided = guidance is not None
        if guided and not self._is_conditional:
            raise ValueError(f"{self.name}: guidance needs a class-conditional block (context_dim > 0); this one "
                             f"is unconditional.")
        if guided:  # one network call on [conditional; unconditional] rows, one cache of 2N rows
            g = tf.cast(guidance, self.dtype)
            context = tf.concat([context, mean_class_context(context, self.dtype)], axis=0)

        def body(i, x, ldj, cache):
            # x holds the data tokens 0 .. i; token i's output gives a, b of token i + 1
            token = tf.gather(x, i, axis=1)
            raw, cache = self._network.step(tf.concat([token, token], 0) if guided else token, i, cache, context)
            if guided:  # the reference's guide_what="ab", on the raw outputs, bounded once after
                cond, uncond = tf.split(tf.cast(raw, self.dtype), 2, axis=0)
                raw = cond + g * (cond - uncond)
            log_s, shift = self._log_scale_and_shift(raw)
            new = tf.gather(latent, i + 1, axis=1) * tf.exp(log_s) + shift
            x = tf.where(tf.equal(positions, i + 1)[None, :, None], new[:, None, :], x)
            return i + 1, x, ldj + tf.reduce_sum(log_s, axis=-1), cache

        cache = self._network.empty_cache(2 * n if guided else n)
        start = (tf.constant(0), latent, tf.zeros([n], self.dtype), cache)
        _, x, fldj, _ = tf.while_loop(lambda i, *_: i < num - 1, body, start, maximum_iterations=num - 1)
        x, fldj = self._finish(x, fldj, z)
        return x, {"fldj": fldj, "ildj": -fldj}

    def _forward_event_shape(self, input_shape):
        return input_shape

    def _inverse_event_shape(self, output_shape):
        return output_shape

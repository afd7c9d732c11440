"""The causal transformer conditioner of TarFlow: a Keras 3 layer over a sequence of tokens.

`h = x W_in + b_in + pos[order] (+ E c)`, then `layers` pre-LayerNorm blocks
`h += Attn(LN(h))` (causal), `h += MLP(LN(h))`, and a zero-initialised `out = h W_out + b_out`.
Output `t` depends on tokens `<= t`; the bijector shifts it by one token.
"""
import keras
import numpy as np
import tensorflow as tf

from tfp_glow.bijectors.conditioning import ContextProjection

#: PyTorch's `LayerNorm` epsilon, as the reference uses.
LAYER_NORM_EPSILON = 1e-5

_LOW_PRECISION = (tf.bfloat16, tf.float16)


def _dense(x, kernel, bias):
    """`x W + b` on `[..., K]` as one 2-D matmul (einsum is slow on small sizes, docs/design.md)."""
    k, u = kernel.shape
    y = tf.matmul(tf.reshape(x, [-1, k]), kernel) + bias
    return tf.reshape(y, tf.concat([tf.shape(x)[:-1], [u]], axis=0))


def _layer_norm(h, gamma, beta):
    # statistics in float32 under bf16/fp16, as the reference's `norm(x.float())`
    dt = h.dtype
    h32 = tf.cast(h, tf.float32) if dt in _LOW_PRECISION else h
    mean, var = tf.nn.moments(h32, axes=[-1], keepdims=True)
    out = tf.cast((h32 - mean) * tf.math.rsqrt(var + LAYER_NORM_EPSILON), dt)
    return out * gamma + beta


class CausalTransformer(keras.layers.Layer):
    """`out = h_L W_out + b_out`, `h_0 = x W_in + b_in + P[order] + E c`: `[N, T, D] -> [N, T, 2D]`, causal.

    TarFlow's conditioner on tokens in flow order. For each layer
    `h += W_o softmax(q k^T / sqrt(d_head) + causal) v` with `q, k, v = LN(h) W_qkv + b_qkv`,
    then `h += W_2 gelu(W_1 LN(h) + b_1) + b_2`; `out = h W_out + b_out` with `W_out`, `b_out`
    zero at initialisation (so a new flow step starts as the identity). Output `t` depends on
    tokens `0 .. t` only. The positional embedding `P` is indexed by the original token
    position (`P[order[t]]` at flow position `t`), as in the reference.

    `step` runs one token with a key/value cache of fixed shape `[N, T, width]` per layer, so
    sequential sampling fits in a `tf.while_loop` (and XLA).

    Args:
      token_size: D, values per token (Python int).
      num_tokens: T, tokens per sequence.
      width: model width; divisible by `heads`.
      layers: number of transformer layers.
      heads: attention heads, each of size `width // heads`.
      expansion: MLP hidden size is `expansion * width`.
      order: permutation of `range(T)`: flow position `t` holds original token `order[t]`.
      context_dim: size K of a context `c [N, K]` (one-hot labels), embedded by a zero-initialised
        `ContextProjection` and added to every token; 0 for none.
      **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`).

    References:
      Zhai et al., "Normalizing Flows are Capable Generative Models", 2024, arXiv:2412.06329.
      Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """

    def __init__(self, token_size, num_tokens, width, layers, heads, expansion=4, order=None, context_dim=0,
                 **kwargs):
        super().__init__(**kwargs)
        self.token_size, self.num_tokens, self.width = int(token_size), int(num_tokens), int(width)
        self.num_layers, self.heads, self.expansion = int(layers), int(heads), int(expansion)
        self.order = tuple(range(self.num_tokens)) if order is None else tuple(int(o) for o in order)
        self.context_dim = int(context_dim)
        d, w, e = self.token_size, self.width, self.expansion * self.width
        glorot, zeros, ones = "glorot_uniform", "zeros", "ones"
        self.proj_in_kernel = self.add_weight(shape=(d, w), initializer=glorot, name="proj_in_kernel")
        self.proj_in_bias = self.add_weight(shape=(w,), initializer=zeros, name="proj_in_bias")
        self.pos_embed = self.add_weight(shape=(self.num_tokens, w), name="pos_embed",
                                         initializer=keras.initializers.RandomNormal(stddev=0.01))
        shapes = {"attn_norm_gamma": ((w,), ones), "attn_norm_beta": ((w,), zeros),
                  "qkv_kernel": ((w, 3 * w), glorot), "qkv_bias": ((3 * w,), zeros),
                  "attn_out_kernel": ((w, w), glorot), "attn_out_bias": ((w,), zeros),
                  "mlp_norm_gamma": ((w,), ones), "mlp_norm_beta": ((w,), zeros),
                  "mlp_in_kernel": ((w, e), glorot), "mlp_in_bias": ((e,), zeros),
                  "mlp_out_kernel": ((e, w), glorot), "mlp_out_bias": ((w,), zeros)}
        self.blocks = [{key: self.add_weight(shape=s, initializer=init, name=f"layer{l}_{key}")
                        for key, (s, init) in shapes.items()} for l in range(self.num_layers)]
        self.proj_out_kernel = self.add_weight(shape=(w, 2 * d), initializer=zeros, name="proj_out_kernel")
        self.proj_out_bias = self.add_weight(shape=(2 * d,), initializer=zeros, name="proj_out_bias")
        self.context_projection = None
        if self.context_dim:
            self.context_projection = ContextProjection(w, name="context", dtype=self.dtype_policy)
            with keras.name_scope(self.name):  # weight paths `<name>/context/...`, as if built in a call
                self.context_projection.build((None, self.context_dim))
        self.built = True

    def _w(self, v):
        # explicit casts: `step` runs outside `__call__`, where Keras does not autocast
        return tf.cast(v, self.compute_dtype)

    def _embed(self, tokens, positions, context):
        h = _dense(tf.cast(tokens, self.compute_dtype), self._w(self.proj_in_kernel), self._w(self.proj_in_bias))
        # a one-hot matmul, not tf.gather: a dense gradient (no IndexedSlices) for the embedding
        h = h + tf.matmul(tf.one_hot(positions, self.num_tokens, dtype=h.dtype), self._w(self.pos_embed))
        if self.context_projection is not None:
            if context is None:
                raise ValueError(f"{self.name} is conditional (context of size {self.context_dim}) and needs a context.")
            h = h + tf.cast(self.context_projection(context), h.dtype)[:, None, :]
        return h

    def _attend(self, q, k, v, valid):
        """Multi-head attention of `q [N, Q, W]` over `k, v [N, K, W]`; `valid [Q, K]` (bool)."""
        hd = self.width // self.heads

        def split(t):
            return tf.reshape(t, tf.concat([tf.shape(t)[:2], [self.heads, hd]], axis=0))

        scores = tf.einsum("nqhd,nkhd->nhqk", split(q), split(k)) * tf.cast(hd ** -0.5, q.dtype)
        low = q.dtype in _LOW_PRECISION
        scores = tf.cast(scores, tf.float32) if low else scores
        scores = tf.where(valid, scores, tf.constant(-np.inf, scores.dtype))
        weights = tf.cast(tf.nn.softmax(scores, axis=-1), q.dtype)
        out = tf.einsum("nhqk,nkhd->nqhd", weights, split(v))
        return tf.reshape(out, tf.concat([tf.shape(q)[:2], [self.width]], axis=0))

    def _layer(self, l, h, keys_values):
        """One pre-LayerNorm block on `h [N, Q, W]`; `keys_values(l, k, v) -> (k, v, valid)`."""
        b = {key: self._w(v) for key, v in self.blocks[l].items()}
        y = _layer_norm(h, b["attn_norm_gamma"], b["attn_norm_beta"])
        q, k, v = tf.split(_dense(y, b["qkv_kernel"], b["qkv_bias"]), 3, axis=-1)
        k, v, valid = keys_values(l, k, v)
        h = h + _dense(self._attend(q, k, v, valid), b["attn_out_kernel"], b["attn_out_bias"])
        y = _layer_norm(h, b["mlp_norm_gamma"], b["mlp_norm_beta"])
        y = tf.nn.gelu(_dense(y, b["mlp_in_kernel"], b["mlp_in_bias"]), approximate=False)
        return h + _dense(y, b["mlp_out_kernel"], b["mlp_out_bias"])

    def _out(self, h):
        return _dense(h, self._w(self.proj_out_kernel), self._w(self.proj_out_bias))

    def call(self, tokens, context=None):
        """All tokens at once: `[N, T, D]` (and `[N, K]`) -> `[N, T, 2D]`, causal."""
        causal = tf.constant(np.tril(np.ones((self.num_tokens, self.num_tokens), bool)))
        h = self._embed(tokens, list(self.order), context)
        for l in range(self.num_layers):
            h = self._layer(l, h, lambda _, k, v: (k, v, causal))
        return self._out(h)

    def empty_cache(self, n):
        """Zero key and value buffers, `[n, T, width]` per layer, for `step`."""
        zeros = tf.zeros(tf.stack([n, self.num_tokens, self.width]), self.compute_dtype)
        return tuple(zeros for _ in range(self.num_layers)), tuple(zeros for _ in range(self.num_layers))

    def step(self, token, i, cache, context=None):
        """Token `i` (flow order) `[N, D]` -> `([N, 2D]` output `i`, the cache with its keys and values).

        `i` may be a scalar tensor; the cache must hold tokens `0 .. i-1` (from earlier steps).
        """
        at_i = tf.equal(tf.range(self.num_tokens), i)
        valid = (tf.range(self.num_tokens) <= i)[None, :]
        position = tf.gather(tf.constant(self.order), i)[None]
        keys, values = list(cache[0]), list(cache[1])

        def keys_values(l, k, v):  # write position i of the fixed-shape buffers
            keys[l] = tf.where(at_i[None, :, None], k, keys[l])
            values[l] = tf.where(at_i[None, :, None], v, values[l])
            return keys[l], values[l], valid

        h = self._embed(token[:, None, :], position, context)
        for l in range(self.num_layers):
            h = self._layer(l, h, keys_values)
        return self._out(h)[:, 0], (tuple(keys), tuple(values))

    def get_config(self):
        return {**super().get_config(), "token_size": self.token_size, "num_tokens": self.num_tokens,
                "width": self.width, "layers": self.num_layers, "heads": self.heads, "expansion": self.expansion,
                "order": self.order, "context_dim": self.context_dim}

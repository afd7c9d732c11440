"""The latent sampler and its seed helper, shared by the model, the SavedModel and the latent toolkit.

`z = T * s * eps`, `eps = tf.random.stateless_normal([n, *latent_shape], seed)`: the base draw
of every sampler in the package (`FlowModel.sample`, the SavedModel's `sample`/`sample_n`,
`latent.draw_latent`). `T` is the temperature (the base standard deviation; a batch of
temperatures is a batch of base distributions, as in TFP) and `s` an optional per-entry scale
(per-level temperatures). One int seed `k` means the stateless pair `[k, 0]` everywhere, so
the same seed gives the same latent, hence the same samples, on the live model and in the
SavedModel. The draw depends only on the seed and the number of entries (Philox counters), so
`draw_latent(L, 1, T, k)[0]` is row `k` of `draw_rows(L, [T], [k])`: one row of a batch and a
batch of one agree. Under XLA (`jit_compile=True`) the same contracts hold, with other numbers:
XLA has its own generator.

References:
  Kingma & Dhariwal, "Glow", NeurIPS 2018 (temperature: sampling from `N(0, T^2)`).
"""
import numpy as np
import tensorflow as tf

__all__ = ["draw_latent", "draw_rows", "stateless_seed"]

_MAX_SEED = 2**31 - 1


def stateless_seed(seed=None):
    """The stateless seed, int32 `[2]`, of an int `k` (`[k, 0]`), a pair, or `None`.

    Args:
      seed: a Python/numpy int or an int tensor of shape `[]` (used as `[seed, 0]`), a pair
        `[2]`, or `None`: a fresh pair from TensorFlow's global generator
        (`keras.utils.set_random_seed` makes that repeatable).

    Returns:
      int32 tensor `[2]`.

    Raises:
      ValueError: a non-integer dtype or a shape other than `[]` or `[2]`.
    """
    if seed is None:
        return tf.random.uniform([2], maxval=_MAX_SEED, dtype=tf.int32)
    seed = tf.convert_to_tensor(seed)
    if not seed.dtype.is_integer:
        raise ValueError(f"seed must be an integer or a pair of integers; received dtype {seed.dtype.name}.")
    seed = tf.cast(seed, tf.int32)
    if seed.shape.rank == 0:
        return tf.stack([seed, tf.zeros([], tf.int32)])
    if seed.shape.as_list() != [2]:
        raise ValueError(f"seed must be an int or a pair [2] of ints; received shape {seed.shape.as_list()}.")
    return seed


def _checked_temperature(temperature):
    """`temperature` as float32; values known in Python must be finite and >= 0 (a graph
    tensor is the caller's to check, e.g. with `tf.debugging.Assert`)."""
    value = tf.get_static_value(temperature) if tf.is_tensor(temperature) else temperature
    if value is None:
        return tf.cast(temperature, tf.float32)
    t = np.asarray(value, np.float32)
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError(f"temperature must be finite and >= 0; received {t.tolist()!r}.")
    return tf.constant(t)


def draw_latent(latent_shape, n, temperature=1.0, seed=None, scale=None):
    """Latents `z = T * scale * eps`, `[n, *T.shape, *latent_shape]`; every `T` scales the same `eps`.

    `eps = tf.random.stateless_normal([n, *latent_shape], stateless_seed(seed))`.

    Args:
      latent_shape: the flow's latent shape, Python ints.
      n: number of draws, a Python int >= 0 or an int32 scalar tensor (inside a graph).
      temperature: `T`, a float or an array of floats >= 0 (its shape is a batch shape), or a
        float32 tensor of static rank.
      seed: see `stateless_seed`; the same seed gives the same `eps`.
      scale: optional per-entry scale `[*latent_shape]` (`latent.level_temperatures`), or `None`.

    Returns:
      float32 tensor `[n, *T.shape, *latent_shape]`.

    Raises:
      ValueError: `n` not an int >= 0, a negative or non-finite temperature, a bad seed.
    """
    latent_shape = tuple(int(d) for d in latent_shape)
    if not tf.is_tensor(n) and not (isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0):
        raise ValueError(f"n must be an int >= 0; received {n!r}.")
    t = _checked_temperature(temperature)
    shape = tf.concat([tf.reshape(tf.cast(n, tf.int32), [1]), tf.constant(latent_shape, tf.int32)], axis=0)
    eps = tf.random.stateless_normal(shape, seed=stateless_seed(seed), dtype=tf.float32)
    eps.set_shape([None if tf.is_tensor(n) else int(n), *latent_shape])
    if scale is not None:
        eps = eps * tf.cast(scale, tf.float32)
    batch = t.shape.as_list()
    eps = tf.reshape(eps, [-1, *([1] * len(batch)), *latent_shape])
    return eps * tf.reshape(t, [*batch, *([1] * len(latent_shape))])


def draw_rows(latent_shape, temperature, seed):
    """One latent per row: row `i` is `draw_latent(latent_shape, 1, temperature[i], seed[i])[0]`.

    `z_i = T_i * stateless_normal(latent_shape, seed=[seed_i, 0])`, so a request can be split
    into rows or batched by a server (TF Serving's request batching) with the same result.

    Args:
      latent_shape: the flow's latent shape, Python ints.
      temperature: float32 `[N]`, each >= 0 (checked by the caller inside a graph).
      seed: int32 `[N]`, one int seed per row.

    Returns:
      float32 tensor `[N, *latent_shape]`.
    """
    latent_shape = tuple(int(d) for d in latent_shape)
    eps = tf.map_fn(lambda s: tf.random.stateless_normal(latent_shape, seed=stateless_seed(s), dtype=tf.float32),
                    tf.cast(seed, tf.int32), fn_output_signature=tf.TensorSpec(latent_shape, tf.float32))
    return eps * tf.reshape(tf.cast(temperature, tf.float32), [-1] + [1] * len(latent_shape))

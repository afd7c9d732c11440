"""Pixel helpers: bit reduction, uniform dequantization and its inverse for display.

``reduce_bits``, ``dequantize`` and ``to_uint8`` are pure TensorFlow ops: they work on batches whose
size is only known at run time and can be used inside ``tf.function(jit_compile=True)``.
"""
from __future__ import annotations

import tensorflow as tf

from tfp_glow.data.validation import _is_int

# Largest float32 strictly below 1 that still keeps (k + u) < k + 1 exactly for
# every integer |k| <= 128 (float32 spacing in [64, 128) is 2**-17). See
# `dequantize`.
_U_MAX = 1.0 - 2.0 ** -17


def _check_n_bits(n_bits) -> int:
    if not _is_int(n_bits):
        raise ValueError(
            f"n_bits must be a Python int in [1, 8]; got {n_bits!r} "
            f"of type {type(n_bits).__name__}"
        )
    n_bits = int(n_bits)
    if not 1 <= n_bits <= 8:
        raise ValueError(f"n_bits must lie in [1, 8]; got {n_bits}")
    return n_bits


def reduce_bits(x_uint8, n_bits: int) -> tf.Tensor:
    """``floor(x / 2**(8 - n_bits))`` as float32: 8-bit levels -> ``n_bits``-bit levels.

    Exact for integer inputs in ``[0, 255]`` (the division is by a power of
    two). Works on any shape, including batches of unknown size, and inside
    ``tf.function(jit_compile=True)``.

    Args:
      x_uint8: tensor of 8-bit pixel levels, any shape (e.g. uint8
        ``[B, H, W, C]``); other integer or integer-valued float dtypes are
        cast to float32.
      n_bits: Python int in ``[1, 8]``.

    Returns:
      float32 tensor of the same shape with integer values in
      ``[0, 2**n_bits - 1]``.

    Raises:
      ValueError: ``n_bits`` is not an int in ``[1, 8]``.
    """
    n_bits = _check_n_bits(n_bits)
    x = tf.cast(x_uint8, tf.float32)
    return tf.floor(x / float(2 ** (8 - n_bits)))


def dequantize(
    x_int,
    n_bits: int,
    seed=None,
    noise=None,
) -> tf.Tensor:
    """Uniform dequantization ``x = (x_int + u) / 2**n_bits - 0.5``, ``u ~ U[0, 1)``.

    ``u`` is drawn with ``tf.random.stateless_uniform(shape, seed)`` when a
    stateless ``seed`` is given (repeatable, e.g. for test-set figures), taken
    from ``noise`` when given, and otherwise drawn with
    ``tf.random.uniform``. The value is computed as
    ``((x_int - 2**(n_bits-1)) + u) / 2**n_bits`` with ``u`` clipped to
    ``[0, 1 - 2**-17]``: mathematically the same, but float32 rounding can
    then never push a value into the next bin, so
    ``to_uint8(dequantize(q, n), n)`` recovers the levels ``q`` exactly and
    the result is strictly below 0.5.

    The same stateless seed gives the same noise on every call in one
    execution mode; note that XLA (``jit_compile=True``) uses a different
    random kernel, so eager and XLA draws for one seed differ.

    Args:
      x_int: integer-valued tensor of levels in ``[0, 2**n_bits - 1]`` (e.g.
        the output of :func:`reduce_bits`), any shape, e.g. ``[B, H, W, C]``
        with unknown ``B``.
      n_bits: Python int in ``[1, 8]``.
      seed: optional shape-``[2]`` integer tensor/array, a stateless seed.
      noise: optional float tensor of ``u`` values in ``[0, 1)`` with the
        shape of ``x_int``.

    Returns:
      float32 tensor of the shape of ``x_int`` with values in
      ``[-0.5, 0.5)``.

    Raises:
      ValueError: bad ``n_bits``, both ``seed`` and ``noise`` given, a seed
        whose static shape is not ``[2]``, or ``noise`` whose static shape is
        incompatible with ``x_int``.
    """
    n_bits = _check_n_bits(n_bits)
    if seed is not None and noise is not None:
        raise ValueError("pass either seed or noise to dequantize, not both")
    x = tf.cast(x_int, tf.float32)
    shape = tf.shape(x)
    if noise is not None:
        u = tf.cast(noise, tf.float32)
        if not u.shape.is_compatible_with(x.shape):
            raise ValueError(
                f"noise must have the shape of x_int; expected {x.shape}, got {u.shape}"
            )
    elif seed is not None:
        seed = tf.convert_to_tensor(seed)
        if not seed.dtype.is_integer:
            raise ValueError(f"seed must be an integer tensor of shape [2]; got dtype {seed.dtype.name}")
        if not seed.shape.is_compatible_with([2]):
            raise ValueError(f"seed must have shape [2]; got shape {seed.shape}")
        u = tf.random.stateless_uniform(shape, seed=seed, dtype=tf.float32)
    else:
        u = tf.random.uniform(shape, dtype=tf.float32)
    u = tf.clip_by_value(u, 0.0, _U_MAX)
    half = float(2 ** (n_bits - 1))
    return ((x - half) + u) / float(2 ** n_bits)


def to_uint8(x, n_bits: int) -> tf.Tensor:
    """Inverse of dequantization for display: float in ``[-0.5, 0.5)`` -> uint8 ``0..255``.

    ``q = clip(floor((x + 0.5) * 2**n_bits), 0, 2**n_bits - 1)`` (computed
    exactly as ``floor(x * 2**n_bits) + 2**(n_bits - 1)``), then
    ``round(q * 255 / (2**n_bits - 1))``. NaN maps to 0, ``+inf`` to 255 and
    ``-inf`` to 0; nothing raises inside graph code.

    Args:
      x: float tensor of any shape, e.g. ``[B, H, W, C]`` with unknown ``B``.
      n_bits: Python int in ``[1, 8]``.

    Returns:
      uint8 tensor of the same shape.

    Raises:
      ValueError: ``n_bits`` is not an int in ``[1, 8]`` (raised while
        tracing, never from a running graph).
    """
    n_bits = _check_n_bits(n_bits)
    levels = float(2 ** n_bits)
    x = tf.cast(x, tf.float32)
    q = tf.floor(x * levels) + levels / 2.0
    q = tf.clip_by_value(q, 0.0, levels - 1.0)
    q = tf.where(tf.math.is_nan(x), tf.zeros_like(q), q)
    out = tf.round(q * (255.0 / (levels - 1.0)))
    return tf.cast(tf.clip_by_value(out, 0.0, 255.0), tf.uint8)

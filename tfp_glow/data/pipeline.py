"""Batched ``tf.data`` input pipelines over numpy arrays or datasets of single examples."""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from tfp_glow.data.validation import _is_int


def make_dataset(
    x,
    batch_size: int,
    shuffle: bool = True,
    seed: Optional[int] = 0,
    repeat: bool = False,
    drop_remainder: bool = False,
    cache: bool = True,
    shuffle_buffer: Optional[int] = None,
) -> tf.data.Dataset:
    """Batched input pipeline: ``[cache] -> [shuffle] -> [repeat] -> batch -> prefetch``.

    Args:
      x: numpy array ``[N, ...]`` (e.g. uint8 ``[N, H, W, C]`` or float
        ``[N, D]``; float64 is cast to float32) or a ``tf.data.Dataset`` of
        single examples.
      batch_size: positive int.
      shuffle: shuffle examples (reshuffled every epoch).
      seed: shuffle seed (``None`` for a non-repeatable order).
      repeat: repeat forever (batches then span epoch boundaries).
      drop_remainder: drop the last, smaller batch; without it the batch
        dimension of ``element_spec`` is ``None``.
      cache: cache elements in memory after the first pass (applies to
        ``tf.data`` inputs; numpy inputs are already in memory).
      shuffle_buffer: shuffle buffer size; ``None`` uses the whole data set
        for numpy inputs and ``min(cardinality, 10000)`` (10000 if unknown)
        for ``tf.data`` inputs.

    Returns:
      ``tf.data.Dataset`` of batches of shape ``[batch, ...]``, ending in
      ``.prefetch(tf.data.AUTOTUNE)``.

    Raises:
      ValueError: empty input ("dataset is empty"), ``batch_size`` or
        ``shuffle_buffer`` not a positive int, or (for inputs of known size,
        without ``repeat``) ``drop_remainder=True`` with fewer examples than
        ``batch_size``.
    """
    if not _is_int(batch_size) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
    batch_size = int(batch_size)
    if shuffle_buffer is not None and (not _is_int(shuffle_buffer) or shuffle_buffer <= 0):
        raise ValueError(f"shuffle_buffer must be a positive int or None; got {shuffle_buffer!r}")

    if isinstance(x, tf.data.Dataset):
        ds = x
        card = int(ds.cardinality())
        if card == 0:
            raise ValueError("dataset is empty: the tf.data.Dataset has cardinality 0")
        if card == tf.data.UNKNOWN_CARDINALITY:
            if not any(True for _ in ds.take(1)):
                raise ValueError("dataset is empty: the tf.data.Dataset yielded no elements")
        n = card if card >= 0 else None  # None: unknown or infinite
        if cache:
            ds = ds.cache()
        buffer = shuffle_buffer or (min(n, 10_000) if n is not None else 10_000)
    else:
        x = np.asarray(x)
        if x.ndim == 0:
            raise ValueError(f"expected an array [N, ...] of examples; got a scalar {x!r}")
        if x.shape[0] == 0:
            raise ValueError(f"dataset is empty: got an array of shape {x.shape}")
        if x.dtype == np.float64:
            x = x.astype(np.float32)
        n = int(x.shape[0])
        ds = tf.data.Dataset.from_tensor_slices(x)
        buffer = shuffle_buffer or n

    if drop_remainder and not repeat and n is not None and n < batch_size:
        raise ValueError(
            f"batch_size {batch_size} exceeds the {n} available examples with "
            "drop_remainder=True; no batch would be produced"
        )
    if shuffle:
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)

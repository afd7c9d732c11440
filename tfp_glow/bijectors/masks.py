"""Coupling masks: which entries condition (`a`) and which are transformed (`b`).

Two kinds:
- split masks (`channel`, `half`, `alternate`) cut the tensor into two smaller tensors with
  `tf.split`/`tf.gather`; the conditioner sees `x_a` only and predicts parameters for `x_b`;
- the `checkerboard` mask keeps the full shape: the conditioner sees `x * m` and its output
  acts where `m == 0`, as in RealNVP.
"""
import numpy as np
import tensorflow as tf

MASK_TYPES = ("checkerboard", "channel", "half", "alternate")


class Mask:
    """A partition of an event into a conditioning part `a` and a transformed part `b`.

    Args:
      kind: one of `checkerboard`, `channel` (images `[H, W, C]`), `half`, `alternate`
        (vectors `[D]`).
      event_shape: tuple of Python ints.
      parity: 0 or 1; 1 swaps the roles of the two parts.
    """

    def __init__(self, kind, event_shape, parity=0):
        if kind not in MASK_TYPES:
            raise ValueError(f"Unknown mask {kind!r}; expected one of {MASK_TYPES}.")
        if parity not in (0, 1):
            raise ValueError(f"parity must be 0 or 1; received {parity!r}.")
        self.kind, self.parity = kind, parity
        self.event_shape = tuple(int(d) for d in event_shape)
        rank = 3 if kind in ("checkerboard", "channel") else 1
        if len(self.event_shape) != rank:
            raise ValueError(
                f"A {kind!r} mask needs an event of rank {rank} "
                f"({'[H, W, C]' if rank == 3 else '[D]'}); received event shape {list(self.event_shape)}.")
        if kind == "checkerboard":
            h, w, _ = self.event_shape
            if h * w < 2:
                raise ValueError(f"A checkerboard mask leaves one side empty on event shape {list(self.event_shape)}.")
            ij = np.add.outer(np.arange(h), np.arange(w)) % 2
            m = (ij == parity).astype(np.float32)[:, :, None]
            self._mask = m  # 1 where x conditions, 0 where x is transformed
            self.cond_shape = self.event_shape
            self.transformed_shape = self.event_shape
        else:
            n = self.event_shape[-1]
            if n < 2:
                raise ValueError(
                    f"A {kind!r} mask on event shape {list(self.event_shape)} leaves one side empty: "
                    f"it needs at least 2 {'channels' if rank == 3 else 'dimensions'}.")
            idx = np.arange(n)
            if kind == "alternate":
                a, b = idx[idx % 2 == parity], idx[idx % 2 != parity]
            else:
                half = n // 2
                a, b = (idx[:half], idx[half:]) if parity == 0 else (idx[half:], idx[:half])
            self._a, self._b = a, b
            # Contiguous blocks use split/concat; anything else gathers.
            self._contiguous = kind != "alternate" or n == 2
            self._inv = np.argsort(np.concatenate([a, b]))
            self.cond_shape = self.event_shape[:-1] + (len(a),)
            self.transformed_shape = self.event_shape[:-1] + (len(b),)

    @property
    def is_split(self):
        return self.kind != "checkerboard"

    def mask(self, dtype):
        return tf.constant(self._mask, dtype=dtype)

    def split(self, x):
        """Returns `(cond_input, x_b)` with shapes `[..., *cond_shape]`, `[..., *transformed_shape]`."""
        if not self.is_split:
            m = self.mask(x.dtype)
            return x * m, x
        if self._contiguous:
            n = self.event_shape[-1]
            first, second = tf.split(x, [n // 2, n - n // 2], axis=-1)
            return (first, second) if self.parity == 0 else (second, first)
        return tf.gather(x, self._a, axis=-1), tf.gather(x, self._b, axis=-1)

    def merge(self, x, x_a, y_b):
        """Reassemble the full event from the untouched part and the transformed part."""
        if not self.is_split:
            m = self.mask(x.dtype)
            return x * m + y_b * (1.0 - m)
        if self._contiguous:
            return tf.concat([x_a, y_b] if self.parity == 0 else [y_b, x_a], axis=-1)
        return tf.gather(tf.concat([x_a, y_b], axis=-1), self._inv, axis=-1)

    def select_transformed(self, values):
        """Zero `values` where the mask conditions (checkerboard only); identity for split masks."""
        if self.is_split:
            return values
        return values * (1.0 - self.mask(values.dtype))

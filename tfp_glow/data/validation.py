"""Checks that arrays are images or vectors the flows can train on, with messages that say why not.

``validate_images`` returns ``uint8 [N, H, W, C]`` and ``validate_vectors`` ``float32 [N, D]``; both
raise a ``ValueError`` naming the expected and the received shape or values. Numpy only.
"""
from __future__ import annotations

import numbers

import numpy as np


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _numeric_array(x, name: str) -> np.ndarray:
    """``np.asarray(x)``, checked to have a real integer or float dtype (not bool)."""
    x = np.asarray(x)
    if x.dtype == np.bool_ or not (
        np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    ):
        raise ValueError(
            f"{name} must be a numeric (integer or float) array; got dtype {x.dtype}"
        )
    return x


def validate_images(x, name: str = "images") -> np.ndarray:
    """Checks an image array and returns it as ``uint8 [N, H, W, C]``.

    Requirements: rank 4 (``[N, H, W, C]``, channels last), ``N > 0`` and
    ``H, W, C > 0``, a real numeric dtype, all values finite, whole numbers
    and within ``[0, 255]``. Integer-valued float arrays are accepted and
    cast; images scaled to ``[0, 1]`` are rejected (multiply by 255 first).

    Args:
      x: array-like of shape ``[N, H, W, C]``.
      name: what to call the array in error messages.

    Returns:
      ``np.ndarray`` of dtype ``uint8`` and shape ``[N, H, W, C]`` (a view or
      copy of ``x``).

    Raises:
      ValueError: wrong rank, empty array, non-numeric dtype, NaN/inf,
        non-integer values, or values outside ``[0, 255]``; the message names
        the expected and the received shape/values.
    """
    x = _numeric_array(x, name)
    if x.ndim != 4:
        raise ValueError(
            f"{name} must have rank 4 [N, H, W, C] (channels last); "
            f"got rank {x.ndim} with shape {x.shape}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: expected N > 0 examples, got shape {x.shape}")
    if min(x.shape[1:]) == 0:
        raise ValueError(f"{name} must have H, W, C > 0; got shape {x.shape}")
    if np.issubdtype(x.dtype, np.floating):
        finite = np.isfinite(x)
        if not finite.all():
            n_bad = int((~finite).sum())
            raise ValueError(
                f"{name} must be finite; got {n_bad} NaN/inf value(s) out of {x.size}"
            )
        if not (x == np.floor(x)).all():
            bad = _fmt(x[x != np.floor(x)].flat[0])
            raise ValueError(
                f"{name} must hold whole-number pixel levels in [0, 255]; got "
                f"non-integer value {bad} (dtype {x.dtype}); images scaled to "
                "[0, 1] must be multiplied by 255 and rounded first"
            )
    lo, hi = x.min(), x.max()
    if lo < 0 or hi > 255:
        raise ValueError(
            f"{name}: pixel values must lie in [0, 255]; got min {_fmt(lo)}, max {_fmt(hi)}"
        )
    return x.astype(np.uint8, copy=False)


def validate_vectors(x, name: str = "vectors") -> np.ndarray:
    """Checks a vector data set and returns it as ``float32 [N, D]``.

    Requirements: rank 2 (``[N, D]``), ``N > 0``, ``D > 0``, a real numeric
    dtype and all values finite (checked in float32, so values that overflow
    float32 are rejected too).

    Args:
      x: array-like of shape ``[N, D]``.
      name: what to call the array in error messages.

    Returns:
      ``np.ndarray`` of dtype ``float32`` and shape ``[N, D]``.

    Raises:
      ValueError: wrong rank, empty array, non-numeric dtype or NaN/inf.
    """
    x = _numeric_array(x, name)
    if x.ndim != 2:
        raise ValueError(
            f"{name} must have rank 2 [N, D]; got rank {x.ndim} with shape {x.shape}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: expected N > 0 examples, got shape {x.shape}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} must have D > 0 features; got shape {x.shape}")
    with np.errstate(over="ignore"):
        x = x.astype(np.float32, copy=False)
    finite = np.isfinite(x)
    if not finite.all():
        n_bad = int((~finite).sum())
        raise ValueError(
            f"{name} must be finite (in float32); got {n_bad} NaN/inf value(s) out of {x.size}"
        )
    return x


def _fmt(v) -> str:
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)

"""The 2-D toy densities: ``toy_2d`` and ``TOY_NAMES``, the names it accepts.

``toy_2d`` samples the FFJORD / RealNVP toy sets (moons, circles, checkerboard, rings,
8 Gaussians) as ``float32 [n, 2]`` numpy arrays, offline; ``get_source``
(``tfp_glow.data.sources``) serves them by name with fixed per-split seeds.
"""
from __future__ import annotations

import numpy as np

from tfp_glow.data.validation import _is_int

#: Names accepted by :func:`toy_2d`.
TOY_NAMES = ("moons", "circles", "checkerboard", "rings", "8gaussians")


def toy_2d(name: str, n: int = 2000, seed: int = 0) -> np.ndarray:
    """2-D toy densities from the FFJORD / RealNVP experiments, ``float32 [n, 2]``.

    Samples (roughly within ``[-4, 4]^2``), following FFJORD's
    ``toy_data.py`` but with i.i.d. random angles instead of evenly spaced
    ones:

    * ``moons``: two interleaved half circles with N(0, 0.1^2) noise,
      scaled by 2 and shifted by ``(-1, -0.2)``;
    * ``circles``: two concentric circles of radius 3 and 1.5 (half the
      points each) with N(0, 0.24^2) noise per coordinate;
    * ``rings``: four concentric circles of radius 3, 2.25, 1.5, 0.75 with
      N(0, 0.08^2) noise;
    * ``8gaussians``: a mixture of 8 Gaussians centred at radius
      ``4 / 1.414`` at angles ``k * pi / 4``, std ``0.5 / 1.414``;
    * ``checkerboard``: uniform on the 8 "black" 2x2 squares of a 4x4
      checkerboard covering ``[-4, 4]^2`` (cells whose
      ``floor(x / 2) + floor(y / 2)`` is even).

    Args:
      name: one of ``TOY_NAMES``.
      n: number of samples, a positive int.
      seed: seed for ``np.random.default_rng``; equal seeds give identical
        samples.

    Returns:
      ``np.ndarray`` float32 of shape ``[n, 2]``, rows in random order.

    Raises:
      ValueError: unknown name (the message lists the known names) or
        ``n`` not a positive int.
    """
    if name not in TOY_NAMES:
        raise ValueError(f"unknown toy data set {name!r}; known names: {list(TOY_NAMES)}")
    if not _is_int(n) or n <= 0:
        raise ValueError(f"n must be a positive int; got {n!r}")
    n = int(n)
    rng = np.random.default_rng(seed)

    if name == "moons":
        n_outer = n // 2
        t = rng.uniform(0.0, np.pi, size=n)
        outer = np.stack([np.cos(t), np.sin(t)], axis=1)
        inner = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
        x = np.where((np.arange(n) < n_outer)[:, None], outer, inner)
        x = x + rng.normal(scale=0.1, size=x.shape)
        x = x * 2.0 + np.array([-1.0, -0.2])
    elif name == "circles":
        radius = np.where(np.arange(n) < n // 2, 1.0, 0.5)
        t = rng.uniform(0.0, 2.0 * np.pi, size=n)
        x = radius[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
        x = (x + rng.normal(scale=0.08, size=x.shape)) * 3.0
    elif name == "rings":
        radii = np.array([1.0, 0.75, 0.5, 0.25]) * 3.0
        radius = radii[np.arange(n) % 4]
        t = rng.uniform(0.0, 2.0 * np.pi, size=n)
        x = radius[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
        x = x + rng.normal(scale=0.08, size=x.shape)
    elif name == "8gaussians":
        angles = np.arange(8) * (np.pi / 4.0)
        centers = 4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        k = rng.integers(0, 8, size=n)
        x = (centers[k] + 0.5 * rng.normal(size=(n, 2))) / 1.414
    else:  # checkerboard
        x1 = rng.uniform(size=n) * 4.0 - 2.0
        x2 = rng.uniform(size=n) - rng.integers(0, 2, size=n) * 2.0
        x2 = x2 + np.floor(x1) % 2
        x = np.stack([x1, x2], axis=1) * 2.0
    x = x[rng.permutation(n)]
    return x.astype(np.float32)

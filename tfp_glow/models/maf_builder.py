"""Masked autoregressive flows: `maf_bijector` (MAF or IAF, affine or spline) and `maf`.

Named `maf_builder` so that `tfp_glow.models.maf` stays the builder function.
"""
import numpy as np
import tensorflow as tf

from tfp_glow.bijectors import ActNorm, MaskedAutoregressive
from tfp_glow.models.assembly import _chain, _flatten
from tfp_glow.models.distribution import _distribution


def maf_bijector(event_shape, layers=5, hidden=(128, 128), transform="affine", bins=8, bound=3.0, iaf=False,
                 actnorm=True, dtype=tf.float32):
    """A masked autoregressive flow (or IAF) on vectors, or on flattened images.

    Data -> latent: flatten (images); then `layers` x (ActNorm, `MaskedAutoregressive`), the
    order reversed from one layer to the next. MAF evaluates densities in one pass per layer
    and samples sequentially; IAF (`iaf=True`) the other way round. On flattened images each
    ActNorm starts from statistics pooled over the pixels, as in `nsf_bijector`.

    Args:
      event_shape: `[D]`, or `[H, W, C]` (flattened to `D = H*W*C`).
      layers: number of autoregressive layers.
      hidden: MADE hidden units.
      transform: `affine` (MAF) or `spline` (rational-quadratic autoregressive spline).
      bins, bound: spline bins K and interval `[-B, B]` (spline only).
      iaf: inverse autoregressive flows instead.
      actnorm: an ActNorm before each layer.
      dtype: float dtype.

    References:
      Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow for Density Estimation", NeurIPS 2017.
    """
    d = int(np.prod(event_shape))
    image = len(event_shape) > 1  # flattened: each ActNorm starts from statistics over all pixels
    parts = _flatten(event_shape, d)
    for k in range(layers):
        if actnorm:
            parts.append(ActNorm(d, dtype=dtype, name=f"actnorm{k}", pooled_init=image))
        order = tuple(range(d)) if k % 2 == 0 else tuple(range(d - 1, -1, -1))
        parts.append(MaskedAutoregressive((d,), transform=transform, order=order, hidden=tuple(hidden), bins=bins,
                                          bound=bound, inverse_autoregressive=iaf, dtype=dtype,
                                          name=f"{'iaf' if iaf else 'maf'}{k}"))
    return _chain(parts, name="maf")


def maf(event_shape, dtype=tf.float32, name="maf", validate_args=False, **kwargs):
    """MAF (or IAF) as a distribution over `[D]` or flattened images; see `maf_bijector`, and
    `glow` for `name` and `validate_args`."""
    return _distribution(maf_bijector(tuple(event_shape), dtype=dtype, **kwargs), event_shape, dtype, name,
                         validate_args)

"""NICE: `nice_bijector`, additive couplings and a diagonal scaling, and `nice`, its distribution.

Named `nice_builder` so that `tfp_glow.models.nice` stays the builder function.
"""
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow.bijectors import AdditiveCoupling, DiagonalScale
from tfp_glow.models.assembly import _chain
from tfp_glow.models.distribution import _distribution

tfb = tfp.bijectors


def nice_bijector(event_shape, couplings=4, hidden=(1000, 1000, 1000, 1000, 1000), mask="alternate",
                  dtype=tf.float32):
    """NICE's bijector: additive couplings with MLP conditioners, then the diagonal scaling.

    Data -> latent: flatten (images), `couplings` additive couplings alternating which half
    conditions, then `DiagonalScale`. The latent is the flat vector `[D]`.

    Args:
      event_shape: `[D]`, or `[H, W, C]` (flattened to `D = H*W*C`).
      couplings: number of coupling layers (the paper: 4).
      hidden: MLP hidden units (the paper: 5 x 1000 on MNIST).
      mask: `alternate` (odd/even, the paper) or `half`.
      dtype: float dtype.

    References:
      Dinh, Krueger & Bengio, "NICE: Non-linear Independent Components Estimation", ICLR 2015.
    """
    d = int(np.prod(event_shape))
    parts = []
    if len(event_shape) != 1:
        parts.append(tfb.Reshape(event_shape_out=list(event_shape), event_shape_in=[d], name="flatten"))
    for k in range(couplings):
        parts.append(AdditiveCoupling((d,), mask=mask, parity=k % 2, hidden=tuple(hidden), dtype=dtype,
                                      name=f"coupling{k}"))
    parts.append(DiagonalScale((d,), dtype=dtype, name="scaling"))
    return _chain(parts, name="nice")


def nice(event_shape, dtype=tf.float32, name="nice", validate_args=False, **kwargs):
    """NICE as a distribution over `[D]` or flattened images; see `nice_bijector`, and `glow`
    for `name` and `validate_args`."""
    return _distribution(nice_bijector(tuple(event_shape), dtype=dtype, **kwargs), event_shape, dtype, name,
                         validate_args)

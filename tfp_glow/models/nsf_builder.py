"""Neural spline flows: `nsf_bijector`, spline couplings on vectors or flattened images, and `nsf`.

Named `nsf_builder` so that `tfp_glow.models.nsf` stays the builder function.
"""
import numpy as np
import tensorflow as tf

from tfp_glow.bijectors import ActNorm, SplineCoupling
from tfp_glow.models.assembly import _chain, _flatten
from tfp_glow.models.distribution import _distribution


def nsf_bijector(event_shape, couplings=8, hidden=(128, 128), bins=8, bound=3.0, mask="half", actnorm=True,
                 dtype=tf.float32):
    """A neural spline flow (coupling version) on vectors, or on flattened images.

    Data -> latent: flatten (images); then `couplings` x (ActNorm, rational-quadratic
    `SplineCoupling` with an MLP conditioner), alternating which half conditions. The ActNorm
    in front of each spline (data-dependent initialisation) brings the data to unit scale,
    inside the spline's `[-B, B]`; what falls outside passes through the identity tails. On
    flattened images it starts from statistics pooled over the pixels (`ActNorm(pooled_init=)`):
    per-pixel ones would blow up pixels that are dark in every image of the first batch.

    Args:
      event_shape: `[D]`, or `[H, W, C]` (flattened to `D = H*W*C`).
      couplings: number of spline couplings.
      hidden: MLP hidden units of each conditioner.
      bins: K, spline bins (>= 2).
      bound: B > 0, the spline interval `[-B, B]`.
      mask: `half` or `alternate`.
      actnorm: an ActNorm before each coupling.
      dtype: float dtype.

    References:
      Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", NeurIPS 2019 (RQ-NSF (C)).
    """
    d = int(np.prod(event_shape))
    image = len(event_shape) > 1  # flattened: each ActNorm starts from statistics over all pixels
    parts = _flatten(event_shape, d)
    for k in range(couplings):
        if actnorm:
            parts.append(ActNorm(d, dtype=dtype, name=f"actnorm{k}", pooled_init=image))
        parts.append(SplineCoupling((d,), mask=mask, parity=k % 2, bins=bins, bound=bound, hidden=tuple(hidden),
                                    dtype=dtype, name=f"spline_coupling{k}"))
    return _chain(parts, name="nsf")


def nsf(event_shape, dtype=tf.float32, name="nsf", validate_args=False, **kwargs):
    """A neural spline flow as a distribution over `[D]` or flattened images; see `nsf_bijector`,
    and `glow` for `name` and `validate_args`."""
    return _distribution(nsf_bijector(tuple(event_shape), dtype=dtype, **kwargs), event_shape, dtype, name,
                         validate_args)

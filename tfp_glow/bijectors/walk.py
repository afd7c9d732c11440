"""A lean walk through a bijector tree: `(z, log det)` in one pass.

TFP's public `inverse` / `inverse_log_det_jacobian` go through caches, name scopes, shape
assertions and a broadcast-and-sum per bijector. In a training step that is thousands of
extra graph ops for XLA to compile. This walk calls our bijectors' fused
`_inverse_and_log_det` / `_forward_and_log_det` hooks directly, walks `tfb.Chain` and
`tfb.Invert` itself, and falls back to TFP's public methods for any other bijector. The
tests check it against `TransformedDistribution.log_prob` as the reference.
"""
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.bijectors import chain as chain_lib
from tensorflow_probability.python.bijectors import invert as invert_lib

from tfp_glow.bijectors.conditioning import member_kwargs

tfb = tfp.bijectors
# `tfb.Chain(...)` and `tfb.Invert(...)` build these private bases (or their composite
# subclasses), so the type checks use them.
_CHAIN, _INVERT = chain_lib._Chain, invert_lib._Invert


def _reduce(ldj, x, min_event_ndims, event_ndims):
    """Sum an unreduced log-det (shape `batch + extra event dims`, or a scalar constant) over
    the `event_ndims - min_event_ndims` event dims beyond the bijector's minimum."""
    extra = event_ndims - min_event_ndims
    if extra <= 0:
        return ldj
    ldj = tf.convert_to_tensor(ldj)
    if ldj.shape.rank == 0:  # constant Jacobian: one value per position
        positions = x.shape[x.shape.rank - event_ndims:x.shape.rank - min_event_ndims]
        return ldj * float(np.prod(positions.as_list()))
    return tf.reduce_sum(ldj, axis=list(range(-extra, 0)))


def inverse_and_log_det(bijector, x, event_ndims, **kwargs):
    """`(bijector.inverse(x), bijector.inverse_log_det_jacobian(x, event_ndims))`, fused.

    Args:
      bijector: any TFP bijector; ours, `tfb.Chain` and `tfb.Invert` take the lean path.
      x: tensor `[*batch, *event]` on the data side.
      event_ndims: Python int, rank of the event.
      **kwargs: TFP bijector kwargs, routed as our `Chain` routes them
        (`conditioning.member_kwargs`): `conditional_input=c` reaches every conditional member.

    Returns:
      `(z, ildj)` with `ildj` of the batch shape (or a broadcastable scalar).
    """
    if isinstance(bijector, _CHAIN):
        if getattr(bijector, "_recompute", False):
            return _recomputed(_inverse_chain, bijector, x, event_ndims, kwargs)
        return _inverse_chain(bijector, x, event_ndims, **kwargs)
    if isinstance(bijector, _INVERT):
        return forward_and_log_det(bijector.bijector, x, event_ndims, **kwargs)
    hook = getattr(bijector, "_inverse_and_log_det", None)
    if hook is not None:
        z, ildj = hook(x, **kwargs)
        return z, _reduce(ildj, x, int(bijector.inverse_min_event_ndims), event_ndims)
    return bijector.inverse(x, **kwargs), bijector.inverse_log_det_jacobian(x, event_ndims=event_ndims, **kwargs)


def forward_and_log_det(bijector, z, event_ndims, **kwargs):
    """`(bijector.forward(z), bijector.forward_log_det_jacobian(z, event_ndims))`, fused; kwargs
    as in `inverse_and_log_det`."""
    if isinstance(bijector, _CHAIN):
        if getattr(bijector, "_recompute", False):
            return _recomputed(_forward_chain, bijector, z, event_ndims, kwargs)
        return _forward_chain(bijector, z, event_ndims, **kwargs)
    if isinstance(bijector, _INVERT):
        return inverse_and_log_det(bijector.bijector, z, event_ndims, **kwargs)
    hook = getattr(bijector, "_forward_and_log_det", None)
    if hook is not None:
        x, fldj = hook(z, **kwargs)
        return x, _reduce(fldj, z, int(bijector.forward_min_event_ndims), event_ndims)
    return bijector.forward(z, **kwargs), bijector.forward_log_det_jacobian(z, event_ndims=event_ndims, **kwargs)


def _inverse_chain(chain, x, event_ndims, **kwargs):
    # tfb.Chain([b1, ..., bn]).forward(z) = b1(...bn(z)), so inverse applies b1^-1 first.
    total = 0.0
    for b in chain.bijectors:
        x, ildj = inverse_and_log_det(b, x, event_ndims, **member_kwargs(b, kwargs))
        event_ndims = int(b.inverse_event_ndims(event_ndims))
        total = total + ildj
    return x, total


def _forward_chain(chain, z, event_ndims, **kwargs):
    total = 0.0
    for b in reversed(chain.bijectors):
        z, fldj = forward_and_log_det(b, z, event_ndims, **member_kwargs(b, kwargs))
        event_ndims = int(b.forward_event_ndims(event_ndims))
        total = total + fldj
    return z, total


def _recomputed(walk_chain, chain, x, event_ndims, kwargs):
    """Run a chain under `tf.recompute_grad`: its activations are recomputed in the backward
    pass instead of kept, trading compute for memory in deep models."""
    # tensor kwargs (a context) go through as arguments, so their gradients flow; others are closed over
    names = sorted(k for k, v in kwargs.items() if tf.is_tensor(v))
    fixed = {k: v for k, v in kwargs.items() if k not in names}

    @tf.recompute_grad
    def run(t, *values):
        out, ldj = walk_chain(chain, t, event_ndims, **fixed, **dict(zip(names, values)))
        return out, tf.convert_to_tensor(ldj, dtype=out.dtype)

    return run(x, *[kwargs[k] for k in names])


def set_recompute(bijector, unit):
    """Mark every sub-chain whose `_flow_unit` is `unit` ("step" or "level") for recomputation.

    Args:
      bijector: a flow built by `tfp_glow.models` (Glow marks its steps and levels).
      unit: "step", "level" or None (turn recomputation off).

    Returns:
      The number of chains marked.
    """
    if unit not in (None, "none", "step", "level"):
        raise ValueError(f"recompute must be 'step', 'level' or None; received {unit!r}.")
    chains = [m for m in [bijector, *bijector.submodules] if isinstance(m, _CHAIN)]
    marked = 0
    for c in chains:
        on = unit not in (None, "none") and getattr(c, "_flow_unit", None) == unit
        c._recompute = on
        marked += on
    if unit not in (None, "none") and not marked:
        raise ValueError(f"This flow has no '{unit}' units to recompute (only glow marks steps and levels).")
    return marked


def log_prob(distribution, x, **bijector_kwargs):
    """`distribution.log_prob(x, bijector_kwargs=...)` for a `tfd.TransformedDistribution`,
    via the lean walk.

    `log p(x | c) = log p_base(f^-1(x; c)) + log|det J_{f^-1}(x; c)|`.
    """
    event_ndims = distribution.event_shape.rank
    z, ildj = inverse_and_log_det(distribution.bijector, x, event_ndims, **bijector_kwargs)
    return distribution.distribution.log_prob(z) + ildj

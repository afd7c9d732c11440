"""ActNorm's data-dependent initialisation as an explicit pass over a bijector tree.

`initialize_actnorm(bijector, x)` walks the data -> latent pass of `bijector` eagerly, member
by member, and calls `ActNorm.initialize(t)` on the tensor `t` that reaches each ActNorm before
passing `t` through it, so every ActNorm sees the batch as the initialised layers before it
transform it. The bijectors themselves stay pure maps: their `_forward`/`_inverse` consult no
state (docs/design.md, The bijectors: ActNorm initialisation).

The walk knows the containers that hold ActNorms: `tfb.Chain` (ours too), `tfb.Invert`, which
turns the pass into a forward one, and `Split`, whose inner levels see the kept half. A member
without an ActNorm is applied as it is (TFP's public `forward`/`inverse`).
"""
import tensorflow as tf
from tensorflow_probability.python.bijectors import chain as chain_lib
from tensorflow_probability.python.bijectors import invert as invert_lib

from tfp_glow.bijectors.actnorm import ActNorm
from tfp_glow.bijectors.conditioning import member_kwargs
from tfp_glow.bijectors.split import Split

__all__ = ["actnorms", "initialize_actnorm"]


def actnorms(bijector):
    """Every `ActNorm` in `bijector` (itself included), in `tf.Module` order."""
    return [m for m in (bijector, *bijector.submodules) if isinstance(m, ActNorm)]


def _apply(bijector, t, inverse, kwargs):
    return bijector.inverse(t, **kwargs) if inverse else bijector.forward(t, **kwargs)


def _pass(bijector, t, inverse, force, kwargs):
    """`t` through `bijector` (its inverse, or its forward when `inverse` is False), initialising
    every ActNorm on the way from the tensor that reaches it."""
    if not actnorms(bijector):
        return _apply(bijector, t, inverse, kwargs)
    if isinstance(bijector, ActNorm):
        if force or not bijector.is_initialized:
            bijector.initialize(t, inverse_side=inverse)
        return _apply(bijector, t, inverse, kwargs)
    if isinstance(bijector, chain_lib._Chain):
        # Chain([b1, ..., bn]).forward(z) = b1(...bn(z)): the inverse meets b1 first
        members = bijector.bijectors if inverse else list(reversed(bijector.bijectors))
        for b in members:
            t = _pass(b, t, inverse, force, member_kwargs(b, kwargs))
        return t
    if isinstance(bijector, invert_lib._Invert):
        return _pass(bijector.bijector, t, not inverse, force, kwargs)
    if isinstance(bijector, Split):
        # the inner levels act on the kept half (either direction); the prior holds no ActNorm
        if bijector.inner is not None:
            _pass(bijector.inner, tf.split(t, 2, axis=-1)[0], inverse, force, member_kwargs(bijector.inner, kwargs))
        return _apply(bijector, t, inverse, kwargs)
    raise TypeError(f"initialize_actnorm cannot reach the ActNorms inside {type(bijector).__name__} "
                    f"{bijector.name!r}: it walks tfb.Chain, tfb.Invert and Split. Initialise them with "
                    f"ActNorm.initialize(x) on the tensor each one receives.")


def initialize_actnorm(bijector, x, force=False, **bijector_kwargs):
    """Data-dependent initialisation of every `ActNorm` inside `bijector` from the batch `x`.

    After it, `x` leaves each ActNorm of the data -> latent pass with zero mean and unit
    variance per channel (a zero-variance channel keeps unit scale). One eager pass; call it in
    cross-replica context under `tf.distribute` (outside `strategy.run`): the assignments then
    reach every replica, so all replicas hold identical values.

    Args:
      bijector: any bijector whose inverse maps data to latent (`tfb.Chain`, `tfb.Invert`,
        `Split` and ours, nested).
      x: a data batch `[N, *event_shape]`.
      force: re-initialise layers that are already initialised.
      **bijector_kwargs: TFP bijector kwargs of the pass, e.g. `conditional_input=c [N, K]` for
        a conditional flow.

    Returns:
      The latent `bijector.inverse(x, **bijector_kwargs)` after the initialisation.
    """
    if not tf.executing_eagerly():
        raise RuntimeError("initialize_actnorm must run eagerly, outside tf.function.")
    x = tf.convert_to_tensor(x, dtype=bijector.dtype)
    return _pass(bijector, x, True, bool(force), bijector_kwargs)

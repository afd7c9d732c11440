"""Every bijector of the package, each with a small factory, for the shared property suite.

A factory takes a dtype and returns `(bijector, event_shape)`. Events are tiny so that the
autodiff Jacobian (`D x D`) stays cheap.
"""
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_glow as tg
import tfp_glow.bijectors.validation  # noqa: F401  (CheckInput, not re-exported)

tfb = tfp.bijectors


def _glow_like_level(dtype):
    # squeeze -> actnorm -> 1x1 conv -> coupling -> split(inner: learned prior) -> unsqueeze
    inner = tg.LearnedPrior((2, 2, 4), dtype=dtype)
    return tg.bijectors.Chain([
        tfb.Invert(tg.Squeeze(dtype=dtype)),
        tg.ActNorm(8, dtype=dtype),
        tg.InvertibleConv1x1(8, seed=1, dtype=dtype),
        tg.AffineCoupling((2, 2, 8), mask="channel", hidden=8, dtype=dtype),
        tg.Split((2, 2, 8), inner=inner, dtype=dtype),
        tg.Squeeze(dtype=dtype),
    ])


REGISTRY = {
    "additive_coupling_checkerboard": lambda dt: (tg.AdditiveCoupling((4, 4, 2), "checkerboard", hidden=8, dtype=dt), (4, 4, 2)),
    "additive_coupling_channel": lambda dt: (tg.AdditiveCoupling((3, 3, 4), "channel", parity=1, hidden=8, dtype=dt), (3, 3, 4)),
    "additive_coupling_half": lambda dt: (tg.AdditiveCoupling((5,), "half", hidden=(16,), dtype=dt), (5,)),
    "additive_coupling_alternate": lambda dt: (tg.AdditiveCoupling((5,), "alternate", parity=1, hidden=(16,), dtype=dt), (5,)),
    "affine_coupling_checkerboard": lambda dt: (tg.AffineCoupling((4, 4, 2), "checkerboard", parity=1, hidden=8, dtype=dt), (4, 4, 2)),
    "affine_coupling_channel_tanh": lambda dt: (tg.AffineCoupling((3, 3, 4), "channel", hidden=8, scale_fn="tanh", dtype=dt), (3, 3, 4)),
    "affine_coupling_half": lambda dt: (tg.AffineCoupling((6,), "half", parity=1, hidden=(16,), dtype=dt), (6,)),
    "affine_coupling_alternate": lambda dt: (tg.AffineCoupling((5,), "alternate", hidden=(16,), scale_fn="tanh", dtype=dt), (5,)),
    "actnorm": lambda dt: (tg.ActNorm(3, dtype=dt), (3, 3, 3)),
    "actnorm_pooled_init": lambda dt: (tg.ActNorm(6, dtype=dt, pooled_init=True), (6,)),
    "conv1x1_lu": lambda dt: (tg.InvertibleConv1x1(4, lu=True, seed=0, dtype=dt), (3, 3, 4)),
    "conv1x1_plain": lambda dt: (tg.InvertibleConv1x1(4, lu=False, seed=0, dtype=dt), (3, 3, 4)),
    "squeeze": lambda dt: (tg.Squeeze(dtype=dt), (4, 4, 2)),
    "unsqueeze": lambda dt: (tfb.Invert(tg.Squeeze(dtype=dt)), (2, 2, 8)),
    "split": lambda dt: (tg.Split((3, 3, 4), dtype=dt), (3, 3, 4)),
    "split_with_inner": lambda dt: (tg.Split((2, 2, 4), inner=tg.bijectors.Chain([tg.ActNorm(2, dtype=dt), tg.AffineCoupling((2, 2, 2), "channel", hidden=8, dtype=dt)]), dtype=dt), (2, 2, 4)),
    "learned_prior": lambda dt: (tg.LearnedPrior((2, 2, 3), dtype=dt), (2, 2, 3)),
    "diagonal_scale": lambda dt: (tg.DiagonalScale((5,), dtype=dt), (5,)),
    "glow_level_chain": lambda dt: (_glow_like_level(dt), (4, 4, 2)),
    # bounds below the test inputs' spread, so the identity tails are exercised too
    "spline_coupling_checkerboard": lambda dt: (tg.SplineCoupling((4, 4, 2), "checkerboard", bins=4, bound=2.0, hidden=8, dtype=dt), (4, 4, 2)),
    "spline_coupling_channel": lambda dt: (tg.SplineCoupling((3, 3, 4), "channel", parity=1, bins=4, bound=1.5, hidden=4, dtype=dt), (3, 3, 4)),
    "spline_coupling_half": lambda dt: (tg.SplineCoupling((5,), "half", bins=5, bound=1.5, hidden=(16,), dtype=dt), (5,)),
    "spline_coupling_alternate": lambda dt: (tg.SplineCoupling((5,), "alternate", parity=1, bins=4, hidden=(16,), dtype=dt), (5,)),
    "maf_affine": lambda dt: (tg.MaskedAutoregressive((5,), "affine", order=(3, 1, 4, 0, 2), hidden=(16, 16), dtype=dt), (5,)),
    "iaf_affine": lambda dt: (tg.MaskedAutoregressive((5,), "affine", order=(4, 3, 2, 1, 0), hidden=(16,), inverse_autoregressive=True, dtype=dt), (5,)),
    # (sequential passes cost one network call per dimension: small events keep the suite fast)
    "maf_spline_image": lambda dt: (tg.MaskedAutoregressive((1, 2, 2), "spline", order=(3, 0, 2, 1), bins=4, bound=1.5, hidden=(16,), dtype=dt), (1, 2, 2)),
    "iaf_spline": lambda dt: (tg.MaskedAutoregressive((3,), "spline", bins=3, bound=2.0, hidden=(16,), inverse_autoregressive=True, dtype=dt), (3,)),
    # TarFlow: T = 4 tokens in each (the sampling pass is one transformer step per token)
    "tarflow_identity": lambda dt: (tg.bijectors.TransformerAutoregressive((4, 4, 1), patch_size=2, width=8, layers=2, heads=2, dtype=dt), (4, 4, 1)),
    "tarflow_flip": lambda dt: (tg.bijectors.TransformerAutoregressive((2, 2, 2), patch_size=1, width=8, layers=1, heads=2, order="flip", expansion=2, dtype=dt), (2, 2, 2)),
    "tarflow_permutation_unbounded": lambda dt: (tg.bijectors.TransformerAutoregressive((1, 4, 1), patch_size=1, width=4, layers=1, heads=1, order=(2, 0, 3, 1), scale_bound=None, dtype=dt), (1, 4, 1)),
    "check_input_data": lambda dt: (tg.bijectors.validation.CheckInput((3, 2), "inverse", dtype=dt), (3, 2)),
    "check_input_latent": lambda dt: (tg.bijectors.validation.CheckInput((2, 2, 3), "forward", dtype=dt), (2, 2, 3)),
}


def randomize(bijector, seed=0, scale=0.3):
    """Give every trainable variable random values, so no layer sits at its identity init."""
    rng = np.random.default_rng(seed)
    for v in bijector.trainable_variables:
        v.assign(v + scale * rng.standard_normal(v.shape).astype(v.dtype.as_numpy_dtype))
    return bijector


def make(name, dtype=tf.float32, seed=0):
    keras.utils.set_random_seed(seed)  # conditioner initialisers too: every run builds the same bijector
    bijector, event_shape = REGISTRY[name](dtype)
    return randomize(bijector, seed), event_shape


def bijector_types(bijector):
    """Every bijector class inside `bijector` (through chains, `Invert` and `Split.inner`)."""
    seen, stack = set(), [bijector]
    while stack:
        b = stack.pop()
        seen.add(type(b))
        stack.extend(getattr(b, "bijectors", []) or [])
        for attr in ("bijector", "inner"):
            if isinstance(getattr(b, attr, None), tfb.Bijector):
                stack.append(getattr(b, attr))
    return seen

"""RealNVP: `realnvp_bijector` (images, multi-scale, or vectors), `realnvp`, and `logit_preprocessing`.

Named `realnvp_builder` so that `tfp_glow.models.realnvp` stays the builder function.
"""
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow.bijectors import ActNorm, AffineCoupling, Chain, LearnedPrior, Split, Squeeze
from tfp_glow.models.assembly import _chain, _check_image_shape, _check_num_classes
from tfp_glow.models.distribution import _distribution

tfb = tfp.bijectors


def logit_preprocessing(alpha=0.05):
    """RealNVP's logit transform as a TFP bijector, data `x` in `(-0.5, 0.5)`.

    `forward(y) = (sigmoid(y) - alpha) / (1 - 2 alpha) - 0.5`, so `inverse(x) =
    logit(alpha + (1 - 2 alpha)(x + 0.5))`; its log-det counts in `log_prob`, so bits/dim
    stay those of the data in `[-0.5, 0.5)`.
    """
    return Chain([tfb.Shift(-0.5), tfb.Scale(1.0 / (1.0 - 2.0 * alpha)), tfb.Shift(-alpha), tfb.Sigmoid()],
                 name="logit_preprocessing")


def realnvp_bijector(event_shape, levels=2, couplings_per_stage=3, hidden=64, actnorm=True,
                     learn_prior=False, logit_alpha=None, mask=None, dtype=tf.float32, _level=0, num_classes=0):
    """RealNVP's bijector.

    Images `[H, W, C]` (multi-scale, data -> latent): per level, `couplings_per_stage`
    checkerboard couplings (alternating parity), squeeze, `couplings_per_stage` channel
    couplings, factor out half (standard normal, or a learned prior with `learn_prior`),
    recurse, unsqueeze; the last level has `couplings_per_stage + 1` checkerboard couplings.
    Scales are `exp(2 tanh(h / 2))`; an actnorm after each coupling stands in for the paper's
    batch normalisation. Vectors `[D]`: `couplings_per_stage` affine couplings with alternating
    `half` masks (or `mask`), each followed by an actnorm.

    Args:
      event_shape: `[H, W, C]` (H, W divisible by `2**(levels-1)`) or `[D]`.
      levels: number of scales (images).
      couplings_per_stage: couplings per stage (images), or couplings in all (vectors).
      hidden: conv width (images) or tuple of MLP units (vectors).
      actnorm: interleave ActNorm layers.
      learn_prior: learned priors at the splits.
      logit_alpha: if set, prepend RealNVP's logit preprocessing (images in `[-0.5, 0.5)`).
      mask: vector mask kind, `half` (default) or `alternate`.
      dtype: float dtype.
      num_classes: K > 0 makes the flow class-conditional on a one-hot context `[*batch, K]`
        (TFP kwarg `conditional_input`): every coupling network sees it, the split priors take
        a learned per-class mean and log-scale (with or without `learn_prior`), and a
        class-conditional `LearnedPrior` ends the flow. 0: unconditional.

    References:
      Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017.
    """
    if _level == 0:
        _check_num_classes(num_classes)
    k_ctx = int(num_classes)
    parts = [logit_preprocessing(logit_alpha)] if (logit_alpha and _level == 0) else []
    if len(event_shape) == 1:
        if not isinstance(hidden, (tuple, list)):
            hidden = (int(hidden),) * 2
        for k in range(couplings_per_stage):
            parts.append(AffineCoupling(event_shape, mask=mask or "half", parity=k % 2, hidden=tuple(hidden),
                                        scale_fn="tanh", dtype=dtype, name=f"coupling{k}", context_dim=k_ctx))
            if actnorm:
                parts.append(ActNorm(event_shape[-1], dtype=dtype, name=f"actnorm{k}"))
        if k_ctx:
            parts.append(LearnedPrior(event_shape, dtype=dtype, name="top_prior", context_dim=k_ctx))
        return _chain(parts, name="realnvp")
    if _level == 0:
        _check_image_shape(event_shape, levels - 1, "realnvp")
    h, w, c = event_shape

    def stage(shape, kind, n, tag):
        out = []
        for k in range(n):
            out.append(AffineCoupling(shape, mask=kind, parity=k % 2, hidden=hidden, scale_fn="tanh",
                                      dtype=dtype, name=f"{tag}_{kind}{k}", context_dim=k_ctx))
            if actnorm:
                out.append(ActNorm(shape[-1], dtype=dtype, name=f"{tag}_actnorm{k}"))
        return out

    tag = f"level{_level}"
    if _level + 1 == levels:
        parts += stage(event_shape, "checkerboard", couplings_per_stage + 1, tag)
        if k_ctx:
            parts.append(LearnedPrior(event_shape, dtype=dtype, name="top_prior", context_dim=k_ctx))
        return _chain(parts, name=f"realnvp_{tag}")
    sq = (h // 2, w // 2, 4 * c)
    parts += stage(event_shape, "checkerboard", couplings_per_stage, tag)
    parts.append(tfb.Invert(Squeeze(dtype=dtype), name=f"{tag}_squeeze"))
    parts += stage(sq, "channel", couplings_per_stage, tag)
    inner = realnvp_bijector((sq[0], sq[1], sq[2] // 2), levels, couplings_per_stage, hidden, actnorm,
                             learn_prior, None, mask, dtype, _level + 1, num_classes=num_classes)
    parts.append(Split(sq, inner=inner, learn_prior=learn_prior, dtype=dtype, name=f"{tag}_split",
                       context_dim=k_ctx))
    parts.append(Squeeze(dtype=dtype, name=f"{tag}_unsqueeze"))
    return _chain(parts, name=f"realnvp_{tag}")


def realnvp(event_shape, dtype=tf.float32, name="realnvp", validate_args=False, **kwargs):
    """RealNVP as a distribution over `[H, W, C]` or `[D]`; see `realnvp_bijector`, and `glow`
    for `name` and `validate_args`."""
    return _distribution(realnvp_bijector(tuple(event_shape), dtype=dtype, **kwargs), event_shape, dtype,
                         name, validate_args)

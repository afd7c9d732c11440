"""Glow: `glow_bijector`, the multi-scale bijector over `[H, W, C]`, and `glow`, its distribution.

Named `glow_builder` so that `tfp_glow.models.glow` stays the builder function.
"""
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow.bijectors import networks
from tfp_glow.bijectors import (ActNorm, AdditiveCoupling, AffineCoupling, InvertibleConv1x1, LearnedPrior, Split,
                                Squeeze)
from tfp_glow.bijectors.coupling import DEFAULT_SCALE_MIN
from tfp_glow.models.assembly import _chain, _check_image_shape, _check_num_classes
from tfp_glow.models.distribution import _distribution

tfb = tfp.bijectors


def glow_bijector(event_shape, levels=3, steps=32, hidden_channels=512, coupling="affine", lu=True,
                  learn_top=True, split_prior=True, seed=0, dtype=tf.float32, _level=0, num_classes=0,
                  scale_min=DEFAULT_SCALE_MIN, prior_logscale_factor=0.0):
    """Glow's multi-scale bijector over `[H, W, C]`.

    Each level (data -> latent): squeeze; `steps` x (actnorm, invertible 1x1 conv, coupling on a
    channel mask); then, below the top, `Split` with a learned conditional prior whose inner
    bijector is the next level; at the top, a `LearnedPrior` (if `learn_top`); unsqueeze.

    Args:
      event_shape: `[H, W, C]`, Python ints, H and W divisible by `2**levels`.
      levels: L, number of squeezes.
      steps: K, flow steps per level.
      hidden_channels: width of the coupling networks.
      coupling: `affine` (`s = sigmoid(h + 2)`) or `additive`.
      lu: LU-parametrised 1x1 convolutions.
      learn_top: a learned top prior.
      split_prior: learned conditional priors at the splits (`True`); `"channel"`: a learned
        per-channel Gaussian there (normflows' `GlowBase`, `networks.ChannelParameters`);
        `False`: standard normal.
      seed: base seed of the 1x1 rotations.
      dtype: float dtype.
      num_classes: K > 0 makes the flow class-conditional on a one-hot context `[*batch, K]`
        (TFP kwarg `conditional_input`): every coupling network sees it, and the split priors
        and the top prior (always present then) take a learned per-class offset of their mean
        and log-scale (openai/glow's `ycond`). 0: unconditional.
      scale_min: the floor `s_min` of the affine couplings' density-pass scale
        (`AffineCoupling`'s `scale_min`).
      prior_logscale_factor: `f > 0` gives the conditional split priors openai/glow's
        `conv2d_zeros` (`networks.ScaledZeroConv2D`, outputs times `exp(f s)`); 0: a plain
        zero-initialised convolution.

    References:
      Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", NeurIPS 2018.
    """
    if _level == 0:
        _check_image_shape(event_shape, levels, "glow")
        if coupling not in ("affine", "additive"):
            raise ValueError(f"coupling must be 'affine' or 'additive'; received {coupling!r}.")
        _check_num_classes(num_classes)
    k_ctx = int(num_classes)
    h, w, c = event_shape
    sq = (h // 2, w // 2, 4 * c)
    parts = [tfb.Invert(Squeeze(dtype=dtype), name=f"level{_level}_squeeze")]
    for k in range(steps):
        tag = f"level{_level}_step{k}"
        coupling_kwargs = {"scale_min": scale_min} if coupling == "affine" else {}
        cls = AffineCoupling if coupling == "affine" else AdditiveCoupling
        step = _chain([
            ActNorm(sq[-1], dtype=dtype, name=f"{tag}_actnorm"),
            InvertibleConv1x1(sq[-1], lu=lu, seed=seed * 100003 + _level * 1009 + k, dtype=dtype,
                              name=f"{tag}_conv1x1"),
            cls(sq, mask="channel", hidden=hidden_channels, dtype=dtype, name=f"{tag}_coupling", context_dim=k_ctx,
                **coupling_kwargs),
        ], name=tag)
        step._flow_unit = "step"  # a unit for gradient recomputation
        parts.append(step)
    if _level + 1 < levels:
        inner = glow_bijector((sq[0], sq[1], sq[2] // 2), levels, steps, hidden_channels, coupling, lu,
                              learn_top, split_prior, seed, dtype, _level + 1, num_classes=num_classes,
                              scale_min=scale_min, prior_logscale_factor=prior_logscale_factor)
        # "channel": normflows' GlowBase at the split, a per-channel Gaussian (an ablation)
        prior_net = None
        if split_prior == "channel":
            prior_net = networks.ChannelParameters(sq[2], dtype=tf.as_dtype(dtype).name, name=f"level{_level}_split_prior")
        elif split_prior and prior_logscale_factor:
            prior_net = networks.ScaledZeroConv2D(sq[2], logscale_factor=prior_logscale_factor,
                                                  dtype=tf.as_dtype(dtype).name, name=f"level{_level}_split_prior")
        parts.append(Split(sq, inner=inner, learn_prior=bool(split_prior), conditioner=prior_net, dtype=dtype,
                           name=f"level{_level}_split", context_dim=k_ctx))
    elif learn_top or k_ctx:
        parts.append(LearnedPrior(sq, dtype=dtype, name="top_prior", context_dim=k_ctx))
    parts.append(Squeeze(dtype=dtype, name=f"level{_level}_unsqueeze"))
    level = _chain(parts, name=f"glow_level{_level}")
    level._flow_unit = "level"
    return level


def glow(event_shape, dtype=tf.float32, name="glow", validate_args=False, **kwargs):
    """Glow as a distribution over `[H, W, C]`; see `glow_bijector` for the arguments.

    Paper defaults: `levels=3, steps=32, hidden_channels=512, coupling="affine", lu=True`.

    Args:
      event_shape: `[H, W, C]`.
      dtype: float dtype.
      name: the distribution's name (TFP's `name`).
      validate_args: TFP's flag: check at run time that data entering `log_prob`/`inverse`
        and latents entering `forward` are finite and of the right event shape (one
        `bijectors.CheckInput` at each end of the flow), and TFP's own argument checks.
      **kwargs: `glow_bijector`'s arguments.
    """
    return _distribution(glow_bijector(tuple(event_shape), dtype=dtype, **kwargs), event_shape, dtype, name,
                         validate_args)

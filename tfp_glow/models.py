"""Model builders: NICE, RealNVP, Glow, neural spline flows and MAF as `tfd.TransformedDistribution`s.

Each returns `TransformedDistribution(standard normal over the event, bijector)`, where the
bijector's `inverse` maps data (dequantized to `[-0.5, 0.5)`, or raw vectors) to the latent
and `forward` samples. Multi-scale models keep one latent of the data's shape: every level
squeezes, runs its steps, factors out half under a (learned) prior, recurses on the other
half and unsqueezes, so the whole flow stays one bijector.
"""
import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow.bijectors import (ActNorm, AdditiveCoupling, AffineCoupling, Chain, DiagonalScale,
                                InvertibleConv1x1, LearnedPrior, MaskedAutoregressive, Split, SplineCoupling,
                                Squeeze)
from tfp_glow import networks
from tfp_glow.bijectors.validation import CheckInput
from tfp_glow.bijectors.coupling import DEFAULT_SCALE_MIN

tfb = tfp.bijectors
tfd = tfp.distributions

FLOWS = ("glow", "realnvp", "nice", "nsf", "maf")

#: Version of what stored weights mean. 2: Glow's sigmoid coupling contracts on the density
#: pass (`z_b = (x_b - t) * sigma`, openai/glow's direction); version 1 divided by `sigma`
#: there, so a version-1 Glow's weights define a different (and worse-behaved) model today.
WEIGHTS_FORMAT_VERSION = 2


class OldWeightsWarning(UserWarning):
    """Weights saved by an older tfp_glow whose layers meant something else."""


def old_weights_message(flow_config_dict, format_version, source):
    """A warning text if weights of `format_version` mean something else in this version.

    Args:
      flow_config_dict: `FlowConfig.to_dict()` of the model the weights belong to.
      format_version: the version recorded with the weights (`None` or 1 for old files).
      source: what is being loaded, for the message.
    """
    if (format_version or 1) >= WEIGHTS_FORMAT_VERSION:
        return None
    kwargs = flow_config_dict.get("kwargs", {})
    if flow_config_dict.get("flow") != "glow" or kwargs.get("coupling", "affine") != "affine":
        return None  # only Glow's affine (sigmoid) coupling changed
    return (f"{source} was saved by tfp_glow before weights format 2, when Glow's affine coupling "
            f"divided by its scale on the density pass; it now multiplies, as openai/glow does. "
            f"These weights load, but they define a different model: its likelihoods and samples "
            f"are not the ones that were trained. Retrain the model.")


def standard_normal(event_shape, dtype=tf.float32, scale=1.0):
    """`N(0, scale^2 I)` over `event_shape`; `scale` is the sampling temperature."""
    return tfd.Sample(tfd.Normal(tf.zeros([], dtype), tf.cast(scale, dtype)), list(event_shape))


def logit_preprocessing(alpha=0.05):
    """RealNVP's logit transform as a TFP bijector, data `x` in `(-0.5, 0.5)`.

    `forward(y) = (sigmoid(y) - alpha) / (1 - 2 alpha) - 0.5`, so `inverse(x) =
    logit(alpha + (1 - 2 alpha)(x + 0.5))`; its log-det counts in `log_prob`, so bits/dim
    stay those of the data in `[-0.5, 0.5)`.
    """
    return Chain([tfb.Shift(-0.5), tfb.Scale(1.0 / (1.0 - 2.0 * alpha)), tfb.Shift(-alpha), tfb.Sigmoid()],
                 name="logit_preprocessing")


def _check_image_shape(event_shape, levels, who):
    if len(event_shape) != 3:
        raise ValueError(f"{who} on images expects event shape [H, W, C]; received {list(event_shape)}.")
    h, w, _ = event_shape
    f = 2 ** levels
    if h % f or w % f:
        raise ValueError(
            f"{who} with {levels} levels squeezes {levels} times and needs H and W divisible by "
            f"{f}; received image shape {list(event_shape)}.")


def _check_num_classes(num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 0 \
            or num_classes == 1:
        raise ValueError(f"num_classes must be 0 (unconditional) or an int >= 2; received {num_classes!r}.")


def _chain(data_to_latent, name):
    """A chain from bijectors listed in the data -> latent order (eager-safe `Chain`)."""
    return Chain(list(data_to_latent), name=name)


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


def _flatten(event_shape, d):
    """Data -> latent: `[H, W, C]` -> `[D]` (nothing for vectors)."""
    if len(event_shape) == 1:
        return []
    return [tfb.Reshape(event_shape_out=list(event_shape), event_shape_in=[d], name="flatten")]


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


def _latent_shape(bijector, event_shape):
    return tuple(tf.TensorShape(bijector.inverse_event_shape(event_shape)).as_list())


def _distribution(bijector, event_shape, dtype, name, validate_args=False):
    """`TransformedDistribution(N(0, I), bijector)`; with `validate_args`, a `CheckInput` at
    each end of the flow asserts finite inputs of the right event shape (data into `inverse`,
    latents into `forward`), and TFP's own checks are on in the distributions."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string; received {name!r}.")
    if not isinstance(validate_args, bool):
        raise ValueError(f"validate_args must be True or False; received {validate_args!r}.")
    latent_shape = _latent_shape(bijector, event_shape)
    if validate_args:
        bijector = Chain([CheckInput(event_shape, "inverse", "data", dtype=dtype, name=f"{name}_check_data"),
                          bijector,
                          CheckInput(latent_shape, "forward", "latent", dtype=dtype, name=f"{name}_check_latent")],
                         validate_args=True, name=f"{name}_validated")
    base = tfd.Sample(tfd.Normal(tf.zeros([], dtype), tf.ones([], dtype), validate_args=validate_args),
                      list(latent_shape), validate_args=validate_args)
    return tfd.TransformedDistribution(base, bijector, validate_args=validate_args, name=name)


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


def realnvp(event_shape, dtype=tf.float32, name="realnvp", validate_args=False, **kwargs):
    """RealNVP as a distribution over `[H, W, C]` or `[D]`; see `realnvp_bijector`, and `glow`
    for `name` and `validate_args`."""
    return _distribution(realnvp_bijector(tuple(event_shape), dtype=dtype, **kwargs), event_shape, dtype,
                         name, validate_args)


def nice(event_shape, dtype=tf.float32, name="nice", validate_args=False, **kwargs):
    """NICE as a distribution over `[D]` or flattened images; see `nice_bijector`, and `glow`
    for `name` and `validate_args`."""
    return _distribution(nice_bijector(tuple(event_shape), dtype=dtype, **kwargs), event_shape, dtype, name,
                         validate_args)


def nsf(event_shape, dtype=tf.float32, name="nsf", validate_args=False, **kwargs):
    """A neural spline flow as a distribution over `[D]` or flattened images; see `nsf_bijector`,
    and `glow` for `name` and `validate_args`."""
    return _distribution(nsf_bijector(tuple(event_shape), dtype=dtype, **kwargs), event_shape, dtype, name,
                         validate_args)


def maf(event_shape, dtype=tf.float32, name="maf", validate_args=False, **kwargs):
    """MAF (or IAF) as a distribution over `[D]` or flattened images; see `maf_bijector`, and
    `glow` for `name` and `validate_args`."""
    return _distribution(maf_bijector(tuple(event_shape), dtype=dtype, **kwargs), event_shape, dtype, name,
                         validate_args)


_BUILDERS = {"nice": nice, "realnvp": realnvp, "glow": glow, "nsf": nsf, "maf": maf}


@dataclasses.dataclass
class FlowConfig:
    """Everything needed to rebuild a flow: its kind, event shape and builder arguments."""

    flow: str = "glow"
    event_shape: tuple = (8, 8, 1)
    kwargs: dict = dataclasses.field(default_factory=dict)

    def build(self, dtype=tf.float32):
        if self.flow not in _BUILDERS:
            raise ValueError(f"Unknown flow {self.flow!r}; expected one of {FLOWS}.")
        return _BUILDERS[self.flow](tuple(self.event_shape), dtype=dtype, **self.kwargs)

    def to_dict(self):
        return {"flow": self.flow, "event_shape": list(self.event_shape), "kwargs": dict(self.kwargs)}

    @classmethod
    def from_dict(cls, d):
        return cls(d["flow"], tuple(d["event_shape"]), dict(d.get("kwargs", {})))


def count_parameters(distribution):
    """Number of trainable scalars of a distribution (`tf.Module` view)."""
    return int(sum(np.prod(v.shape) for v in distribution.trainable_variables))

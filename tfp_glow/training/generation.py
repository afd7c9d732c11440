"""Generation mode: Gaussian noise augmentation, the one-step score denoiser, guidance checks.

TarFlow's recipe for samples (Zhai et al. 2024): train on `x~ = x + sigma * eps`
(`FlowModel(noise_sigma=sigma)`, on top of the uniform dequantization), so the flow learns the
smoothed density `p_sigma`; sample `x~` from it, then take one step of Tweedie's formula
(`models.denoising`),
`x = x~ + sigma^2 grad_x log p_sigma(x~)`, the posterior mean `E[x | x~]`. Guided samples of a
class-conditional model extrapolate from the mean class (`guidance`, taken by the blocks that
support it, `TransformerAutoregressive`).

What is reported stays comparable: `evaluate`, the validation figures and the SavedModel's
`log_prob` score the clean data with uniform dequantization and no Gaussian noise, so bits/dim
is the exact dequantized bound of the model `p_sigma` on clean data. The training loss of a
noisy run is the negative log-likelihood of the noisy batch, a different (larger-entropy)
figure; it is not the bound.

References:
  Zhai et al., "Normalizing Flows are Capable Generative Models", 2024, arXiv:2412.06329.
  Efron, "Tweedie's formula and selection bias", JASA 2011.
"""
import numpy as np
import tensorflow as tf

from tfp_glow.bijectors.conditioning import GUIDANCE, mean_class_context, takes_guidance
from tfp_glow.models.denoising import denoise  # noqa: F401  (the model's, re-exported)

__all__ = ["add_training_noise", "check_guidance", "check_label_dropout", "check_noise_sigma", "denoise", "drop_labels",
           "guidance_kwargs"]

_NOISE_STREAM = 0x6e6f  # folded into the dequantization seed: an independent stream
_LABEL_STREAM = 0x6c62  # the label dropout's stream


def _checked_float(value, ok, message):
    """`value` as a float if it is a finite real number (not a bool) that `ok` accepts, else
    `ValueError(message + received)`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not np.isfinite(value) or not ok(value):
        raise ValueError(f"{message}; received {value!r}.")
    return float(value)


def check_noise_sigma(sigma):
    """`sigma` as a float >= 0, or a clear `ValueError`."""
    return _checked_float(sigma, lambda v: v >= 0, "noise_sigma must be a finite float >= 0 (0: no noise)")


def add_training_noise(x_pre, sigma, seed):
    """`x_pre + sigma * eps`, `eps ~ N(0, I)` from the stateless `seed [2]` (a stream of its own)."""
    eps = tf.random.stateless_normal(tf.shape(x_pre), tf.random.experimental.stateless_fold_in(seed, _NOISE_STREAM),
                                     dtype=x_pre.dtype)
    return x_pre + tf.cast(sigma, x_pre.dtype) * eps


def check_label_dropout(rate):
    """`rate` as a float in [0, 1), or a clear `ValueError`."""
    return _checked_float(rate, lambda v: 0 <= v < 1, "label_dropout must be a float in [0, 1) (0: off)")


def drop_labels(context, rate, seed):
    """Each row of a one-hot `context [N, K]` replaced by the uniform `1/K` with probability `rate`.

    Classifier-free guidance's training (the reference's `drop_label`): the uniform context is
    the mean class embedding, which guided sampling extrapolates from, so the flow also learns
    the unconditional density there. Rows are drawn from the stateless `seed [2]` (a stream of
    its own).
    """
    u = tf.random.stateless_uniform(tf.shape(context)[:1], tf.random.experimental.stateless_fold_in(seed, _LABEL_STREAM))
    return tf.where((u < rate)[:, None], mean_class_context(context), context)


def check_guidance(model, guidance):
    """`guidance` as a float32 scalar tensor for `model`'s sampling pass, or `None`.

    Raises:
      ValueError: guidance on an unconditional model, on a flow none of whose blocks take it, or
        a value that is not a finite float >= 0.
    """
    if guidance is None:
        return None
    if not getattr(model, "context_dim", 0):
        raise ValueError("guidance needs a class-conditional model (tg.ConditionalFlowModel); this model is "
                         "unconditional.")
    if not takes_guidance(model.distribution.bijector):
        raise ValueError(f"guidance needs a flow whose blocks take it (flow 'tarflow'); this is "
                         f"{model.config_.flow!r}.")
    g = np.asarray(guidance, np.float64)
    if g.ndim != 0 or not np.isfinite(g) or g < 0:
        raise ValueError(f"guidance must be a finite float >= 0; received {guidance!r}.")
    return tf.constant(float(g), tf.float32)


def guidance_kwargs(guidance):
    """The bijector kwargs that carry `guidance` (none for `None`)."""
    return {} if guidance is None else {GUIDANCE: guidance}

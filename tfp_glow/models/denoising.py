"""The one-step score denoiser of a flow trained on Gaussian-noised data: Tweedie's formula.

`x = x~ + sigma^2 grad_x log p_sigma(x~)` is the posterior mean `E[x | x~]` when `x~ = x + sigma
eps` and `p_sigma` is the density of `x~` (TarFlow's sample denoising). The model, the serving
graph and the latent toolkit share this one function.

References:
  Efron, "Tweedie's formula and selection bias", JASA 2011.
  Zhai et al., "Normalizing Flows are Capable Generative Models", 2024, arXiv:2412.06329.
"""
import tensorflow as tf

from tfp_glow.bijectors import log_prob

__all__ = ["denoise"]


def denoise(distribution, x, sigma, bijector_kwargs=None):
    """One score step, `x + sigma^2 grad_x log p(x)`, for every example of `x [N, *event]`.

    Args:
      distribution: the flow (`tfd.TransformedDistribution`).
      x: float `[N, *event_shape]`, samples of the noisy density.
      sigma: the training noise's standard deviation.
      bijector_kwargs: a conditional flow's `{"conditional_input": c}`.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        lp = tf.reduce_sum(log_prob(distribution, x, **(bijector_kwargs or {})))
    return x + tf.cast(sigma, x.dtype) ** 2 * tape.gradient(lp, x)

"""`FlowModel`'s maps between data and latent: `sample`, `sample_images`, `encode`, `decode`.

Each takes the conditioning input of a conditional flow explicitly: `labels` (a class-
conditional model's int labels) or `context` (the flow's conditioning tensor itself).
"""
import numpy as np
import tensorflow as tf

from tfp_glow.numerics import averaging
from tfp_glow import data as data_lib
from tfp_glow.models import sampling
from tfp_glow.models import levels
from tfp_glow.training import generation, input_checks

__all__ = ["SamplingMixin"]


class SamplingMixin:
    """Sampling and the latent maps of `FlowModel` (a mixin of it)."""

    @averaging.uses_averaged_weights
    def sample(self, n, temperature=1.0, seed=None, level_temperatures=None, *, labels=None, context=None,
               guidance=None, denoise=None):
        """`n` samples in the flow's data space (`[-0.5, 0.5)` for images), latent `~ N(0, T^2)`.

        `z = T * eps`, `eps = tf.random.stateless_normal([n, *latent_shape], seed)`,
        then `x = bijector.forward(z)` (given the row's conditioning input). As in TFP, a batch
        of temperatures is a batch of base distributions (`Normal(0, T)` with batch shape
        `T.shape`), so the result has shape `[n, *T.shape, *event_shape]`; a scalar `T` gives
        `[n, *event_shape]`. Every temperature decodes the same `eps` for a given seed, so a
        row of samples shows one latent at several temperatures.

        Args:
          n: Python int >= 0.
          temperature: standard deviation `T` of the base distribution, a float or an array
            of floats (>= 0).
          seed: an int or a stateless pair `[2]`: the same seed gives the same samples (an
            int `s` is the pair `[s, 0]`, as the SavedModel's `sample` signature uses, so
            `sample(n, T, s)` equals `export.sample_stateless(model, n, T, s)["x"]`). `None`
            draws a seed from TensorFlow's global generator (`keras.utils.set_random_seed`
            makes that repeatable too).
          level_temperatures: optional, one float per level of a multi-scale flow, finest
            first (`latent.level_temperatures`): each level's noise is scaled by its own
            temperature, on top of `temperature`.
          labels: a class-conditional model's labels: an int (every sample of that class),
            `[n]` ints, or `None` (classes 0..K-1 in turn).
          context: a conditional flow's conditioning input `[n, K]` (instead of `labels`).
          guidance: classifier-free guidance `g >= 0` of a class-conditional TarFlow
            (`TransformerAutoregressive`): extrapolate from the mean class by `g`; `None`: off.
          denoise: one score step `x + sigma^2 grad log p(x)` after sampling
            (`training/generation.py`); `None`: on exactly when the model was trained with
            `noise_sigma > 0`.

        References:
          Kingma & Dhariwal, "Glow", NeurIPS 2018 (temperature `T`: sampling from `N(0, T^2)`).
          Zhai et al., "Normalizing Flows are Capable Generative Models", 2024 (guidance, denoising).
        """
        g = generation.check_guidance(self, guidance)
        c = self.conditional_input(int(n), labels, context, default="cycle")
        z, batch = self._draw_base(n, temperature, seed, level_temperatures)
        if c is not None:  # row i's input for each of its temperatures (z is n-major)
            c = tf.repeat(c, int(np.prod(batch, dtype=np.int64)), axis=0)
        x = self.decode(z, context=c) if g is None else self._decode(input_checks.check_latents(self, z), c, g)
        if (self.noise_sigma > 0) if denoise is None else bool(denoise):
            if not self.noise_sigma:
                raise ValueError("denoise needs a model trained with noise_sigma > 0; this one has noise_sigma=0.")
            x = generation.denoise(self.distribution, x, self.noise_sigma, self.bijector_kwargs(c))
        return tf.reshape(x, [n, *batch, *self.event_shape])

    def _draw_base(self, n, temperature, seed, level_temperatures):
        """`(z [n * prod(T.shape), *latent_shape], T.shape)`: the latents `sample` decodes,
        `n`-major, from the package's one sampler (`tfp_glow.models.sampling.draw_latent`)."""
        scale = None if level_temperatures is None else levels.level_temperatures(self, level_temperatures)
        z = sampling.draw_latent(self.latent_shape, n, temperature, seed, scale=scale)
        batch = tuple(z.shape[1:z.shape.rank - len(self.latent_shape)])
        return tf.reshape(z, [-1, *self.latent_shape]), batch  # the flow takes one batch axis

    def sample_images(self, n, temperature=1.0, seed=None, level_temperatures=None, *, labels=None, context=None,
                      guidance=None, denoise=None):
        """`n` samples as uint8 images `[n, *T.shape, H, W, C]` (0..255); see `sample`."""
        x = self.sample(n, temperature, seed, level_temperatures, labels=labels, context=context, guidance=guidance,
                        denoise=denoise)
        return data_lib.to_uint8(x, self.n_bits)

    @averaging.uses_averaged_weights
    def decode(self, z, labels=None, context=None):
        """Latent `[N, *latent_shape]` -> data (`bijector.forward`), given a conditional flow's
        `labels [N]` or `context [N, K]` (e.g. a blend of two one-hot labels); `N = 0` gives an
        empty batch."""
        z = input_checks.check_latents(self, z)
        c = self.conditional_input(z.shape[0], labels, context)
        return self._decode(z, c)

    @tf.function(reduce_retracing=True)
    def _decode(self, z, context=None, guidance=None):
        empty = tf.zeros((0, *self.event_shape), tf.float32)
        kwargs = {**self.bijector_kwargs(context), **generation.guidance_kwargs(guidance)}
        if z.shape[0] == 0:  # convolutions reject an empty batch
            return empty
        if z.shape[0] is None:  # a retraced signature with an unknown batch size
            return tf.cond(tf.shape(z)[0] > 0, lambda: self.distribution.bijector.forward(z, **kwargs), lambda: empty)
        return self.distribution.bijector.forward(z, **kwargs)

    @averaging.uses_averaged_weights
    def encode(self, x, labels=None, context=None):
        """Raw data `[N, *event_shape]` -> latent (`bijector.inverse`), with the fixed noise and a
        conditional flow's `labels [N]` or `context [N, K]`."""
        x = self.check_batch(x, allow_empty=True)
        n = x.shape[0]
        c = self.conditional_input(n, labels, context)
        if n == 0:
            return tf.zeros((0, *self.latent_shape), tf.float32)
        x_pre = self.preprocess(x, fixed_noise=True)
        return self.distribution.bijector.inverse(x_pre, **self.bijector_kwargs(c))

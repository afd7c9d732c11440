"""The model's pieces that the serving signatures are made of, as graph code with an optional label.

`ServingGraph(model)` is the one place where serving calls the model: dequantization with the
fixed evaluation noise (`FlowModel.dequantize(x, fixed_noise=True)`), the scores
(`log_prob_and_bpd`), the flow in both directions (`bijector.forward` maps latent to data,
`bijector.inverse` data to latent; docs/design.md, Direction and shapes) and, for a
class-conditional model, the one-hot context `c = onehot(y)` they take as `conditional_input`
and the Bayes-rule posterior. Every piece returns empty outputs for an empty batch, since
convolutions reject a batch of 0 ("input depth must be evenly divisible by filter depth").
"""
import weakref

import tensorflow as tf

from tfp_glow import data as data_lib
from tfp_glow.bijectors.conditioning import GUIDANCE
from tfp_glow.models import denoising

__all__ = ["ServingGraph", "unless_empty"]


def unless_empty(x, fn, empty):
    """`fn()`, or `empty` when the batch `x` (axis 0) is empty."""
    return tf.cond(tf.shape(x)[0] > 0, fn, lambda: empty)


class ServingGraph:
    """Graph pieces of one model (held weakly: a cache of its functions must not keep it alive).

    Args:
      model: a `FlowModel`, or a class-conditional one (`num_classes = K > 0`).

    Attributes:
      event_shape, latent_shape: Python ints (`[H, W, C]` or `[D]`; `L...`).
      is_image, n_bits: as the model's.
      num_classes: `K`, 0 for an unconditional model.
    """

    def __init__(self, model):
        self._ref = weakref.ref(model)
        self.event_shape = tuple(int(d) for d in model.event_shape)
        self.latent_shape = tuple(int(d) for d in model.latent_shape)
        self.is_image, self.n_bits = bool(model.is_image), model.n_bits
        self.num_classes = int(getattr(model, "num_classes", 0) or 0)

    @property
    def conditional(self):
        return self.num_classes > 0

    @property
    def model(self):
        # the functions are traced only through the model, which is then alive
        return self._ref()

    # ------------------------------------------------------------------ specs
    @property
    def x_dtype(self):
        return tf.uint8 if self.is_image else tf.float32

    @property
    def x_note(self):
        return " (8-bit pixel levels 0..255)" if self.is_image else ""

    def x_spec(self, dtype=None):
        return tf.TensorSpec([None, *self.event_shape], dtype or self.x_dtype, name="x")

    def z_spec(self):
        return tf.TensorSpec([None, *self.latent_shape], tf.float32, name="z")

    @staticmethod
    def label_spec():
        return tf.TensorSpec([None], tf.int32, name="label")

    # ----------------------------------------------------------------- pieces
    def _kwargs(self, label):
        if label is None:
            return {}
        return {"conditional_input": tf.one_hot(label, self.num_classes, dtype=tf.float32)}

    def dequantize(self, x):
        """`(x_pre, log_q)` of raw `x`: the live model's one fixed noise pattern (through `q(u | x)`
        when variational; `log_q` is None for uniform dequantization)."""
        return self.model.dequantize(x, fixed_noise=True)

    def scores(self, x_pre, log_q=None, label=None):
        """`log_prob`, `nll`, `bits_per_dim` float32 `[N]` of preprocessed `x_pre` (given `label`)."""
        def full():
            kwargs = {} if label is None else {"labels": label}
            log_p, nll, bpd = self.model.log_prob_and_bpd(x_pre, log_q, **kwargs)
            return {"log_prob": log_p, "nll": nll, "bits_per_dim": bpd}
        empty = tf.zeros([0], tf.float32)
        return unless_empty(x_pre, full, {"log_prob": empty, "nll": empty, "bits_per_dim": empty})

    def data_outputs(self, x):
        """`x` float32 in data space and, for images, `images` uint8 at the model's `n_bits`."""
        out = {"x": tf.cast(x, tf.float32)}
        if self.is_image:
            out["images"] = data_lib.to_uint8(x, self.n_bits)
        return out

    def forward(self, z, label=None):
        """Latent `[N, L...]` -> `data_outputs` (`bijector.forward`)."""
        x = unless_empty(z, lambda: tf.cast(self.model.distribution.bijector.forward(z, **self._kwargs(label)),
                                            tf.float32), tf.zeros([0, *self.event_shape], tf.float32))
        return self.data_outputs(x)

    def generate(self, z, label=None, guidance=None):
        """Latent -> a served sample's `data_outputs`: `forward`, classifier-free `guidance` (a
        float32 scalar, flows whose blocks take it), and one score step for a model trained with
        `noise_sigma > 0` (`models.denoising`), as `FlowModel.sample` does."""
        sigma = float(getattr(self.model, "noise_sigma", 0.0) or 0.0)
        if guidance is None and not sigma:
            return self.forward(z, label)
        kwargs = {**self._kwargs(label), **({} if guidance is None else {GUIDANCE: guidance})}

        def full():
            x = tf.cast(self.model.distribution.bijector.forward(z, **kwargs), tf.float32)
            return denoising.denoise(self.model.distribution, x, sigma, self._kwargs(label)) if sigma else x
        return self.data_outputs(unless_empty(z, full, tf.zeros([0, *self.event_shape], tf.float32)))

    def inverse(self, x_pre, label=None):
        """Preprocessed data `[N, ...]` -> latent float32 `[N, L...]` (`bijector.inverse`)."""
        return unless_empty(x_pre, lambda: tf.cast(self.model.distribution.bijector.inverse(
            x_pre, **self._kwargs(label)), tf.float32), tf.zeros([0, *self.latent_shape], tf.float32))

    def classify(self, x_pre):
        """Bayes rule of a conditional model: `label` int32 `[N]`, `log_posterior` and
        `class_log_prob` (`log p(x | y)`) `[N, K]`, `marginal_log_prob` `[N]`."""
        def full():
            ll, joint, marginal = self.model._posterior_parts(x_pre)
            return {"label": tf.argmax(joint, axis=-1, output_type=tf.int32),
                    "log_posterior": joint - marginal[:, None], "class_log_prob": ll, "marginal_log_prob": marginal}
        k = self.num_classes
        return unless_empty(x_pre, full, {"label": tf.zeros([0], tf.int32), "log_posterior": tf.zeros([0, k]),
                                          "class_log_prob": tf.zeros([0, k]), "marginal_log_prob": tf.zeros([0])})

"""`ConditionalFlowModel`: a class-conditional flow `p(x | y)` trained with Keras `fit(x, y)`.

The flow is a builder's flow with `num_classes = K` (`models.glow(..., num_classes=K)`): its
bijector takes the one-hot label `c = onehot(y)` as the TFP kwarg `conditional_input`, so

    log p(x | y) = log N(f^-1(x; c)) + log|det J_{f^-1}(x; c)|,

and sampling draws `z ~ N(0, T^2)` and returns `f(z; c)`. Labels come with the data: `fit(x, y)`
with arrays, or datasets of `(image, label)` pairs (or dicts with `image` and `label`).

Bayes-rule classification: `y_hat = argmax_y log p(x | y) + log p(y)`, with `log p(y)` the
training label frequencies (`class_log_prior`, set by `fit` from array labels; uniform until
then). `evaluate` reports its `accuracy` next to the bits/dim of `log p(x | y)`; without labels
it reports the bits/dim of the marginal `log p(x) = logsumexp_y log p(x | y) + log p(y)`.
With a weight average (`compile(ema_decay=...)`), evaluation, classification, sampling and the
latent maps use the averaged weights, as `FlowModel`'s do.

References:
  Kingma & Dhariwal, "Glow", NeurIPS 2018 (class-conditional priors, openai/glow `ycond`).
  Fetaya et al., "Understanding the limitations of conditional generative models", ICLR 2020
  (likelihood-based classifiers).
"""
import math
import threading

import keras
import numpy as np
import tensorflow as tf

from tfp_glow import averaging
from tfp_glow import data as data_lib
from tfp_glow import export as export_lib
from tfp_glow import labels as labels_lib
from tfp_glow import latent
from tfp_glow.bijectors import log_prob as lean_log_prob
from tfp_glow.bijectors.actnorm import data_dependent_initialization
from tfp_glow.models import FlowConfig
from tfp_glow.training import FlowModel

__all__ = ["ConditionalFlowModel", "flow_model_class", "make_flow_model"]

# The labels of the train step being traced, per thread: MirroredStrategy traces each
# replica's step in its own thread.
_STEP = threading.local()


def flow_model_class(config):
    """`ConditionalFlowModel` for a config with `num_classes`, else `FlowModel`."""
    config = config if isinstance(config, FlowConfig) else FlowConfig.from_dict(config)
    return ConditionalFlowModel if int(config.kwargs.get("num_classes", 0) or 0) else FlowModel


def make_flow_model(config, **kwargs):
    """The right model class for `config` (see `flow_model_class`), built with `kwargs`."""
    return flow_model_class(config)(config, **kwargs)


@keras.saving.register_keras_serializable(package="tfp_glow")
class ConditionalFlowModel(FlowModel):
    """A `FlowModel` of `p(x | y)` for `K` classes (see the module docstring).

    Args:
      config: a `FlowConfig` whose builder arguments include `num_classes = K >= 2`.
      n_bits, eval_seed, recompute, name: as for `FlowModel`.

    Attributes:
      num_classes: `K`.
      class_log_prior: a non-trainable weight `[K]`, `log p(y)`.
    """

    def __init__(self, config, n_bits=8, eval_seed=1234, recompute=None, name="conditional_flow_model", **kwargs):
        super().__init__(config, n_bits=n_bits, eval_seed=eval_seed, recompute=recompute, name=name, **kwargs)
        k = int(self.config_.kwargs.get("num_classes", 0) or 0)
        if k < 2:
            raise ValueError(f"ConditionalFlowModel needs a flow built with num_classes >= 2; the config has "
                             f"num_classes={k}. Use FlowModel for an unconditional flow.")
        self.num_classes = k
        self.class_log_prior = self.add_weight(shape=(k,), initializer=keras.initializers.Constant(-math.log(k)),
                                               trainable=False, name="class_log_prior")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")

    # ------------------------------------------------------------------ labels
    def check_labels(self, labels, n=None, what="labels"):
        """Labels as int32 `[N]`, checked (`labels.check_labels`): clear errors before any step."""
        return labels_lib.check_labels(labels, self.num_classes, n, what)

    def context(self, labels):
        """The bijector's `conditional_input`: one-hot labels, float32 `[N, K]`."""
        return tf.one_hot(tf.cast(labels, tf.int32), self.num_classes, dtype=tf.float32)

    @staticmethod
    def _labels(data):
        if isinstance(data, dict):
            return data.get("label", data.get("y"))
        if isinstance(data, (tuple, list)) and len(data) >= 2:
            return data[1]
        return None

    def set_class_prior(self, labels=None, probabilities=None):
        """`log p(y)` from label frequencies (add-one smoothed) or given probabilities."""
        if probabilities is None:
            y = self.check_labels(labels)
            counts = np.bincount(y, minlength=self.num_classes).astype(np.float64) + 1.0
            probabilities = counts / counts.sum()
        p = np.asarray(probabilities, np.float64)
        if p.shape != (self.num_classes,) or np.any(p <= 0):
            raise ValueError(f"class probabilities must be {self.num_classes} positive numbers; received {p}.")
        self.class_log_prior.assign(np.log(p / p.sum()).astype(np.float32))

    # ------------------------------------------------------------- likelihoods
    def _scores(self, log_p, log_q=None):
        nll = -log_p
        if self.is_image:
            nll = nll + self.num_dims * self.n_bits * math.log(2.0)
        if log_q is not None:  # variational dequantization: the bound -log p + D n log 2 + log q
            nll = nll + log_q
        return log_p, nll, nll / (self.num_dims * math.log(2.0))

    def log_prob_and_bpd(self, x_pre, log_q=None, labels=None):
        """`(log p(x | y), nll, bits/dim)` per example for preprocessed `x_pre` and labels `[N]`
        (`log_q`: as in `FlowModel.log_prob_and_bpd`).

        Inside `train_step` the labels come from the step's data.
        """
        labels = getattr(_STEP, "labels", None) if labels is None else labels
        if labels is None:
            raise ValueError(f"this model is class-conditional (num_classes={self.num_classes}): labels are needed.")
        log_p = lean_log_prob(self.distribution, x_pre, conditional_input=self.context(labels))
        return self._scores(tf.cast(log_p, tf.float32), log_q)

    def class_log_likelihoods(self, x_pre):
        """`log p(x | y)` for every class: float32 `[N, K]` (one pass over `K * N` examples)."""
        n = tf.shape(x_pre)[0]
        k = self.num_classes
        tiled = tf.tile(x_pre, tf.concat([[k], tf.ones([tf.rank(x_pre) - 1], tf.int32)], axis=0))
        ys = tf.repeat(tf.range(k), n)
        log_p = lean_log_prob(self.distribution, tiled, conditional_input=self.context(ys))
        return tf.transpose(tf.reshape(tf.cast(log_p, tf.float32), [k, n]))

    def _posterior_parts(self, x_pre):
        ll = self.class_log_likelihoods(x_pre)
        joint = ll + tf.cast(self.class_log_prior, tf.float32)
        return ll, joint, tf.reduce_logsumexp(joint, axis=-1)

    # ------------------------------------------------------------------- steps
    @property
    def metrics(self):
        return [self.loss_tracker, self.nll_tracker, self.bpd_tracker, self.accuracy_tracker]

    def _step_data(self, data):
        """`(features, labels, sample_weight)` of a batch: Keras' `(x, y[, w])` or a dict."""
        x, y, sw = self._unpack(data)
        if y is None:
            y = self._labels(data if isinstance(data, dict) else x)
        return x, y, sw

    def train_step(self, data):
        y = self._step_data(data)[1]
        if y is None:
            raise ValueError(f"this model is class-conditional (num_classes={self.num_classes}): the training data "
                             f"must be (image, label) pairs.")
        _STEP.labels = y  # read by log_prob_and_bpd while the step is traced
        try:
            return super().train_step(data)
        finally:
            _STEP.labels = None

    def _update_train_metrics(self, *args, **kwargs):
        logs = dict(super()._update_train_metrics(*args, **kwargs))
        logs.pop("accuracy", None)  # classification is measured at evaluation only
        return logs

    def _weighted(self, bpd, sw):
        if sw is None:
            return tf.reduce_mean(bpd), None
        sw = tf.reshape(tf.cast(sw, tf.float32), tf.shape(bpd))
        return tf.math.divide_no_nan(tf.reduce_sum(sw * bpd), tf.reduce_sum(sw)), sw

    def test_step(self, data):
        x, y, sw = self._step_data(data)
        x_pre, log_q = self.dequantize(x, fixed_noise=True)
        ll, joint, marginal = self._posterior_parts(x_pre)
        if y is None:  # the marginal likelihood log p(x); no accuracy without labels
            _, nll, bpd = self._scores(marginal, log_q)
            loss, sw = self._weighted(bpd, sw)
            logs = dict(self._update_metrics(loss, nll, bpd, sw))
            logs.pop("accuracy", None)
            return logs
        y = tf.cast(tf.reshape(y, [-1]), tf.int32)
        _, nll, bpd = self._scores(tf.gather(ll, y, batch_dims=1), log_q)
        loss, sw = self._weighted(bpd, sw)
        correct = tf.cast(tf.equal(tf.argmax(joint, axis=-1, output_type=tf.int32), y), tf.float32)
        self.accuracy_tracker.update_state(correct, sample_weight=sw)
        return self._update_metrics(loss, nll, bpd, sw)

    def predict_step(self, data):
        x, y, _ = self._step_data(data)
        x_pre, log_q = self.dequantize(x, fixed_noise=True)
        ll, joint, marginal = self._posterior_parts(x_pre)
        out = {"class_log_prob": ll, "label": tf.argmax(joint, axis=-1, output_type=tf.int32),
               "marginal_log_prob": marginal}
        chosen = marginal if y is None else tf.gather(ll, tf.cast(tf.reshape(y, [-1]), tf.int32), batch_dims=1)
        log_p, nll, bpd = self._scores(chosen, log_q)
        out.update({"log_prob": log_p, "nll": nll, "bits_per_dim": bpd})
        return out

    def call(self, inputs, training=False):
        """`log p(x | y)` of `(x, y)`, or the marginal `log p(x)` of `x` alone (fixed noise)."""
        x, y = (inputs[0], inputs[1]) if isinstance(inputs, (tuple, list)) else (inputs, None)
        x_pre, _ = self.dequantize(x, fixed_noise=not training)
        if y is None:
            return self._posterior_parts(x_pre)[2]
        return self.log_prob_and_bpd(x_pre, labels=y)[0]

    # ------------------------------------------------------------ initialise/fit
    def initialize(self, batch, force=False, labels=None):
        """ActNorm data-dependent initialisation from one batch, with its labels if given.

        The conditional layers start at zero (their outputs do not depend on the label yet),
        so labels change nothing here; a batch without them uses class 0.
        """
        x = self.check_batch(self._features(batch))
        y = labels if labels is not None else self._labels(batch)
        y = np.zeros(len(x), np.int32) if y is None else self.check_labels(y, len(x))
        x_pre = tf.identity(self.preprocess(x, fixed_noise=True))
        with data_dependent_initialization(force=force):
            self.distribution.bijector.inverse(x_pre, conditional_input=self.context(y))

    def _check_fit_labels(self, x, y):
        if isinstance(x, tf.data.Dataset):
            if y is not None:
                raise ValueError("with a tf.data.Dataset, the labels come in its elements: (image, label); y must be None.")
            if not labels_lib.labels_in(x):
                raise ValueError(f"this model is class-conditional (num_classes={self.num_classes}): the dataset must "
                                 f"yield (image, label) pairs, or dicts with 'image' and 'label'; its elements are "
                                 f"{x.element_spec}.")
            for batch in x.take(1):
                self.check_labels(self._labels(batch), len(self._features(batch)))
            return None
        if isinstance(x, dict):
            x, y = self._features(x), self._labels(x) if y is None else y
        if y is None:
            raise ValueError(f"this model is class-conditional (num_classes={self.num_classes}): labels are needed; "
                             f"call fit(x, y) with integer labels y [N] in 0..{self.num_classes - 1}.")
        return self.check_labels(y, len(x))

    def fit(self, x=None, y=None, callbacks=None, set_prior=True, **kwargs):
        """Keras `fit` on `(x, y)` arrays or a dataset of `(image, label)` pairs.

        Checks the labels (presence, dtype, shape, range) before any step, initialises ActNorm
        from the first batch, and (with `set_prior`, for array labels) sets `class_log_prior`
        from the label frequencies.
        """
        checked = self._check_fit_labels(x, y)
        if checked is not None:
            y = checked
            if set_prior:
                self.set_class_prior(y)
            if not self.is_initialized:
                self.initialize(np.asarray(x[:256]), labels=y[:256])
        elif not self.is_initialized:
            for batch in x.take(1):
                self.initialize(batch)
        return super().fit(x, y, callbacks=callbacks, **kwargs)

    def export(self, filepath, **kwargs):
        """A SavedModel with `log_prob`, `sample`, `encode`, `decode` taking labels, and
        `classify` (`tfp_glow.export.export_conditional_saved_model`)."""
        return export_lib.export_conditional_saved_model(self, filepath, **kwargs)

    # --------------------------------------------------------- the user's API
    @averaging.uses_averaged_weights
    def log_prob(self, x, labels):
        """`log p(x | y)` per example of raw data `x [N, ...]` with labels `[N]` (fixed noise)."""
        x = self.check_batch(x)
        y = self.check_labels(labels, len(x))
        x_pre, log_q = self.dequantize(x, fixed_noise=True)
        return self.log_prob_and_bpd(x_pre, log_q, labels=tf.constant(y))[0]

    @averaging.uses_averaged_weights
    def marginal_log_prob(self, x):
        """`log p(x) = logsumexp_y log p(x | y) + log p(y)` per example of raw data (fixed noise)."""
        x = self.check_batch(x)
        return self._posterior_parts(self.dequantize(x, fixed_noise=True)[0])[2]

    @averaging.uses_averaged_weights
    def classify(self, x, return_log_probs=False):
        """Bayes-rule labels `argmax_y log p(x | y) + log p(y)` of raw data `x [N, ...]`: int32 `[N]`
        (and the posterior log-probabilities `[N, K]` with `return_log_probs`)."""
        x = self.check_batch(x)
        _, joint, marginal = self._posterior_parts(self.dequantize(x, fixed_noise=True)[0])
        pred = tf.argmax(joint, axis=-1, output_type=tf.int32)
        return (pred, joint - marginal[:, None]) if return_log_probs else pred

    def _sample_labels(self, n, labels):
        if labels is None:  # every class in turn, so a grid shows them all
            return np.arange(n, dtype=np.int32) % self.num_classes
        y = np.asarray(labels)
        if y.size == 0 and y.dtype == np.float64:  # `[]`: no rows, whatever numpy guesses
            y = y.astype(np.int32)
        if y.ndim == 0:
            return self.check_labels(np.full(n, y) if np.issubdtype(y.dtype, np.integer) else y, None)
        return self.check_labels(y, n)

    @averaging.uses_averaged_weights
    def sample(self, n, temperature=1.0, seed=None, labels=None, level_temperatures=None):
        """`n` samples of `p(x | y)` in the flow's data space, `[n, *T.shape, *event_shape]`.

        The latent is drawn exactly as `FlowModel.sample` draws it (same seed, same noise; a
        batch of temperatures is a batch of base distributions), then decoded with label `y_i`
        for every temperature of row `i`.

        Args:
          n: Python int >= 0.
          temperature: `T`, a float or an array of floats (>= 0).
          seed: an int or a stateless pair `[2]` (see `FlowModel.sample`).
          labels: an int (every sample of that class), `[n]` ints, or `None` (classes 0..K-1
            in turn).
          level_temperatures: optional, one float per level, finest first.
        """
        y = self._sample_labels(int(n), labels)
        z, batch = self._draw_base(n, temperature, seed, level_temperatures)
        x = self.decode(z, np.repeat(y, int(np.prod(batch, dtype=np.int64))))
        return tf.reshape(x, [n, *batch, *self.event_shape])

    def sample_images(self, n, temperature=1.0, seed=None, labels=None, level_temperatures=None):
        """`n` samples as uint8 images (see `sample`)."""
        return data_lib.to_uint8(self.sample(n, temperature, seed, labels, level_temperatures), self.n_bits)

    @tf.function(reduce_retracing=True)
    def _decode_context(self, z, c):
        return self.distribution.bijector.forward(z, conditional_input=c)

    @averaging.uses_averaged_weights
    def decode(self, z, labels=None, context=None):
        """Latent `[N, *latent_shape]` -> data (`bijector.forward`) given labels `[N]` (or a float
        context `[N, K]`, e.g. a blend of two one-hot labels)."""
        z = tf.convert_to_tensor(z, tf.float32)
        if context is None:
            context = self.context(self.check_labels(labels, int(z.shape[0])))
        if z.shape[0] == 0:  # convolutions reject an empty batch
            return tf.zeros((0, *self.event_shape), tf.float32)
        return self._decode_context(z, tf.convert_to_tensor(context, tf.float32))

    @averaging.uses_averaged_weights
    def encode(self, x, labels=None, context=None):
        """Raw data `[N, *event_shape]` -> latent (`bijector.inverse`) given labels `[N]`."""
        x = tf.convert_to_tensor(x)
        if context is None:
            context = self.context(self.check_labels(labels, int(x.shape[0])))
        return self.distribution.bijector.inverse(self.preprocess(x, fixed_noise=True),
                                                  conditional_input=tf.convert_to_tensor(context, tf.float32))

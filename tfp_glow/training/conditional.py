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

import keras
import numpy as np
import tensorflow as tf

from tfp_glow.numerics import averaging
from tfp_glow import serving as export_lib
from tfp_glow.data import labels as labels_lib
from tfp_glow.bijectors import log_prob as lean_log_prob
from tfp_glow.models import FlowConfig
from tfp_glow.training import FlowModel, generation
from tfp_glow.training.context import as_label_array

__all__ = ["ConditionalFlowModel", "flow_model_class", "make_flow_model"]


def flow_model_class(config):
    """`ConditionalFlowModel` for a config with `num_classes`, else `FlowModel`."""
    config = config if isinstance(config, FlowConfig) else FlowConfig.from_dict(config)
    return ConditionalFlowModel if int(config.kwargs.get("num_classes", 0) or 0) else FlowModel


def make_flow_model(config, label_dropout=0.0, **kwargs):
    """The right model class for `config` (see `flow_model_class`), built with `kwargs`.

    `label_dropout` (a float in [0, 1), or None for 0) goes to a `ConditionalFlowModel`; on an
    unconditional config anything but 0 is a `ValueError`, since there are no labels to drop.
    """
    cls = flow_model_class(config)
    rate = generation.check_label_dropout(label_dropout or 0.0)
    if cls is ConditionalFlowModel:
        return cls(config, label_dropout=rate, **kwargs)
    if rate:
        raise ValueError(f"label_dropout={rate:g} needs a class-conditional flow (num_classes >= 2); this "
                         f"config is unconditional.")
    return cls(config, **kwargs)


@keras.saving.register_keras_serializable(package="tfp_glow")
class ConditionalFlowModel(FlowModel):
    """A `FlowModel` of `p(x | y)` for `K` classes (see the module docstring).

    Training, evaluation, sampling and the latent maps are `FlowModel`'s, with the labels as
    its conditioning input (`labels=`, or the batch's `y`). What this class adds: labels as
    one-hot contexts, the class prior `log p(y)`, the Bayes-rule `classify` and its accuracy,
    and the marginal likelihood `log p(x)`.

    Args:
      config: a `FlowConfig` whose builder arguments include `num_classes = K >= 2`.
      n_bits, eval_seed, recompute, name: as for `FlowModel`.
      label_dropout: share of the training examples whose label is replaced by the uniform
        context `1/K` (the mean class embedding) in each step, classifier-free guidance's
        training (Ho & Salimans 2022; TarFlow's `drop_label`, 0.1): guided sampling
        (`sample(..., guidance=g)`) extrapolates from that context. 0: off. Evaluation,
        classification and sampling always use the given labels.

    Attributes:
      num_classes: `K`.
      class_log_prior: a non-trainable weight `[K]`, `log p(y)`.
    """

    targets_are = "labels"

    def __init__(self, config, n_bits=8, eval_seed=1234, recompute=None, name="conditional_flow_model",
                 label_dropout=0.0, **kwargs):
        super().__init__(config, n_bits=n_bits, eval_seed=eval_seed, recompute=recompute, name=name, **kwargs)
        # classifier-free guidance's training: a share of the steps' labels become the mean class
        self.label_dropout = generation.check_label_dropout(label_dropout)
        k = self.context_dim
        if k < 2:
            raise ValueError(f"ConditionalFlowModel needs a flow built with num_classes >= 2; the config has "
                             f"num_classes={k}. Use FlowModel for an unconditional flow.")
        self.num_classes = k
        self.class_log_prior = self.add_weight(shape=(k,), initializer=keras.initializers.Constant(-math.log(k)),
                                               trainable=False, name="class_log_prior")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")
        self.evaluation_trackers = [self.accuracy_tracker]

    # ------------------------------------------------------------------ labels
    def check_labels(self, labels, n=None, what="labels"):
        """Labels as int32 `[N]`, checked (`labels.check_labels`): clear errors before any step."""
        return labels_lib.check_labels(labels, self.num_classes, n, what)

    def context(self, labels):
        """The bijector's `conditional_input`: one-hot labels, float32 `[N, K]`."""
        return tf.one_hot(tf.cast(labels, tf.int32), self.num_classes, dtype=tf.float32)

    def _resolve_labels(self, n, labels, default):
        if labels is None:
            if default == "cycle":  # every class in turn, so a grid shows them all
                return np.arange(n, dtype=np.int32) % self.num_classes
            return np.zeros(n, np.int32) if default == "first" else None
        if default != "cycle":
            return labels
        y = as_label_array(labels)  # sampling: an int label is that class for every sample
        return np.full(n, y) if y.ndim == 0 and np.issubdtype(y.dtype, np.integer) else y

    def get_config(self):
        return {**super().get_config(), "label_dropout": self.label_dropout}

    def _training_context(self, context, seed):
        if not self.label_dropout:
            return context
        return generation.drop_labels(context, self.label_dropout, seed)

    def _class_hint(self):
        return ""  # this is the class-conditional model

    def _what_conditions(self):
        return f"num_classes={self.num_classes}"

    def _what_targets(self):
        return f"integer labels y [N] in 0..{self.num_classes - 1}"

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
    def class_log_likelihoods(self, x_pre):
        """`log p(x | y)` for every class: float32 `[N, K]` (one pass over `K * N` examples)."""
        n = tf.shape(x_pre)[0]
        k = self.num_classes
        tiled = tf.tile(x_pre, tf.concat([[k], tf.ones([tf.rank(x_pre) - 1], tf.int32)], axis=0))
        ys = tf.repeat(tf.range(k), n)
        log_p = lean_log_prob(self.distribution, tiled, **self.bijector_kwargs(self.context(ys)))
        return tf.transpose(tf.reshape(tf.cast(log_p, tf.float32), [k, n]))

    def _posterior_parts(self, x_pre):
        """`(log p(x | y) [N, K], log p(x, y) [N, K], log p(x) [N])`."""
        ll = self.class_log_likelihoods(x_pre)
        joint = ll + tf.cast(self.class_log_prior, tf.float32)
        return ll, joint, tf.reduce_logsumexp(joint, axis=-1)

    # ------------------------------------------ evaluation (FlowModel's hooks)
    def _evaluation_log_prob(self, x_pre, y):
        """`log p(x | y)` with labels, the marginal `log p(x)` without; the posterior parts."""
        ll, joint, marginal = self._posterior_parts(x_pre)
        chosen = marginal if y is None else tf.gather(ll, tf.cast(tf.reshape(y, [-1]), tf.int32), batch_dims=1)
        return chosen, (ll, joint, marginal)

    def _update_evaluation_metrics(self, extras, y, sample_weight):
        if y is None:  # no accuracy without labels
            return []
        correct = tf.equal(tf.argmax(extras[1], axis=-1, output_type=tf.int32),
                           tf.cast(tf.reshape(y, [-1]), tf.int32))
        self.accuracy_tracker.update_state(tf.cast(correct, tf.float32), sample_weight=sample_weight)
        return [self.accuracy_tracker]

    def _prediction_extras(self, extras):
        ll, joint, marginal = extras
        return {"class_log_prob": ll, "label": tf.argmax(joint, axis=-1, output_type=tf.int32),
                "marginal_log_prob": marginal}

    # ------------------------------------------------------------------ fit
    def fit(self, x=None, y=None, callbacks=None, set_prior=True, **kwargs):
        """`FlowModel.fit` on `(x, y)` arrays or a dataset of `(image, label)` pairs; with
        `set_prior`, for array labels, `class_log_prior` first comes from their frequencies."""
        if set_prior and not isinstance(x, tf.data.Dataset):
            checked = self._check_fit_targets(x, y)
            if checked is not None:
                self.set_class_prior(checked)
        return super().fit(x, y, callbacks=callbacks, **kwargs)

    def export(self, filepath, **kwargs):
        """A SavedModel with `log_prob`, `sample`, `encode`, `decode` taking labels, and
        `classify` (`tfp_glow.serving.export_conditional_saved_model`)."""
        return export_lib.export_conditional_saved_model(self, filepath, **kwargs)

    # --------------------------------------------------------- the user's API
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

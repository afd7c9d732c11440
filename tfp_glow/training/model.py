"""`FlowModel`: a Keras 3 model that trains any flow distribution with `fit` on `tf.data`.

Metrics (docs/design.md, Metrics): with data dequantized to `[-0.5, 0.5)` at
`n_bits` bits, `nll = -log p(x) + D log(2^n_bits)` nats per example (the discrete-data bound)
and `bits_per_dim = nll / (D ln 2)`. For raw float vectors (`n_bits=None`) `nll = -log p(x)`.
The training loss is the mean `bits_per_dim` (the weighted mean under `sample_weight` or
`class_weight`). A conditional flow (`num_classes` in its config) takes its conditioning input
explicitly: as the batch's `y` in the steps, as `labels=`/`context=` elsewhere.

The class is put together from one mixin per idea: `preprocessing` (data checks,
dequantization), `context` (the conditioning input), `steps` (train/test/predict and metrics),
`sampling` (sample, encode, decode) and `compiling` (compile and the learning rate).
"""
import keras
import numpy as np

from tfp_glow.numerics import averaging
from tfp_glow import serving
from tfp_glow.training import keras_inputs
from tfp_glow.training import persistence
from tfp_glow.numerics import stability
from tfp_glow.training import callbacks as callbacks_lib
from tfp_glow.models import dequantization as dequantization_lib
from tfp_glow.data import labels as labels_lib
from tfp_glow.training import summary as summary_lib
from tfp_glow.bijectors import actnorms, initialize_actnorm, keras_layers, log_prob, set_recompute
from tfp_glow.models import FlowConfig
from tfp_glow.training import generation, input_checks, inputs, weighting
from tfp_glow.training.compiling import CompileMixin
from tfp_glow.training.context import ContextMixin
from tfp_glow.training.preprocessing import PreprocessingMixin
from tfp_glow.training.sampling import SamplingMixin
from tfp_glow.training.steps import StepsMixin

__all__ = ["FlowModel"]


@keras.saving.register_keras_serializable(package="tfp_glow")
class FlowModel(PreprocessingMixin, ContextMixin, StepsMixin, SamplingMixin, CompileMixin, keras.Model):
    """Keras model around a flow `tfd.TransformedDistribution` built from a `FlowConfig`.

    `fit`/`evaluate`/`predict` take `tf.data` pipelines (or arrays) of uint8 images
    `[N, H, W, C]` (with `n_bits`) or float vectors `[N, D]` (`n_bits=None`). Images are
    reduced to `n_bits`, then dequantized with uniform noise drawn inside the train step (so a
    cached dataset gets fresh noise every epoch). Evaluation uses one fixed noise pattern
    from `eval_seed` (`eval_noise`), so test figures repeat in every execution mode. A
    conditional flow gets its conditioning input `[N, K]` as the data's `y`.

    Args:
      config: a `FlowConfig` (or its dict) naming the flow, event shape and builder arguments.
      n_bits: bit depth of image data (1..8), or `None` for float vectors.
      eval_seed: seed of the fixed evaluation noise.
      recompute: `None`, `"step"` or `"level"`: recompute those units' activations in the
        backward pass (`tf.recompute_grad`) so deep models fit in memory (Glow only).
      dequantization: `"uniform"` (`u ~ U[0, 1)`) or `"variational"` (images only: a learned
        `q(u | x)`, `dequantization.VariationalDequantizer`, trained jointly; `nll` and
        `bits_per_dim` are then the variational bound, `+ log q(u | x)`).
      noise_sigma: sigma >= 0 of Gaussian noise added to the dequantized training batches
        (generation mode, `training/generation.py`; 0: none). `sample` then denoises with one
        score step; `evaluate` still scores clean data with uniform dequantization.
      name: Keras name.

    Attributes:
      distribution: the `tfd.TransformedDistribution` (its `trainable_variables` are the same
        `tf.Variable`s as the Keras weights).
      context_dim: the size `K` of the flow's conditioning input (0: unconditional).
      ema_decay, weight_average: the decay of the weight average and its
        `averaging.WeightAverage` (`compile(ema_decay=...)`; `None` when off).
    """

    def __init__(self, config, n_bits=8, eval_seed=1234, recompute=None, name="flow_model",
                 dequantization="uniform", noise_sigma=0.0, **kwargs):
        kwargs.pop("dtype", None)
        # The flow, its log-dets and the loss stay float32 whatever the global policy;
        # conditioner networks follow the policy (mixed precision) on their own.
        super().__init__(name=name, dtype="float32", **kwargs)
        self.config_ = config if isinstance(config, FlowConfig) else FlowConfig.from_dict(config)
        if n_bits is not None and not (isinstance(n_bits, (int, np.integer)) and 1 <= n_bits <= 8):
            raise ValueError(f"n_bits must be an int in [1, 8] or None; received {n_bits!r}.")
        self.n_bits = None if n_bits is None else int(n_bits)
        self.eval_seed = int(eval_seed)
        self.event_shape = tuple(int(d) for d in self.config_.event_shape)
        self.num_dims = int(np.prod(self.event_shape))
        self.context_dim = int(self.config_.kwargs.get("num_classes", 0) or 0)
        self.distribution = self.config_.build()
        self.latent_shape = tuple(self.distribution.distribution.event_shape.as_list())
        self.recompute = None if recompute in (None, "none") else recompute
        set_recompute(self.distribution.bijector, self.recompute)
        self.dequantization, self.dequantizer = _dequantizer(dequantization, self.event_shape, self.n_bits)
        # Gaussian noise on the training batches (generation mode; training/generation.py)
        self.noise_sigma = generation.check_noise_sigma(noise_sigma)
        # Keras tracks Keras layers only; hand it every layer inside the bijectors.
        self.flow_layers = keras_layers(self.distribution)
        self._actnorm_layers = actnorms(self.distribution.bijector)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self.bpd_tracker = keras.metrics.Mean(name="bits_per_dim")
        self.evaluation_trackers = []  # a subclass's own evaluation figures (steps.py's hooks)
        # Training-only logs, outside `metrics` so evaluation does not report them:
        # the mean gradient norm of the epoch's applied steps, and the running total of
        # skipped non-finite steps (never reset by Keras).
        self.grad_norm_tracker = keras.metrics.Mean(name="grad_norm")
        self.nonfinite_tracker = keras.metrics.Sum(name="nonfinite_steps")
        # the running sum of the steps' input-check codes, read by `input_checks.InputGuard`
        self.input_error_tracker = keras.metrics.Sum(name="input_errors")
        self.clip_norm = stability.DEFAULT_CLIP_NORM
        self.skip_nonfinite = True
        self.max_nonfinite_steps = stability.DEFAULT_MAX_NONFINITE_STEPS
        self.ema_decay = None  # compile(ema_decay=...): the averages, if any, are `weight_average`
        self.weight_average = None
        self.built = True

    def get_config(self):
        return {"config": self.config_.to_dict(), "n_bits": self.n_bits, "eval_seed": self.eval_seed,
                "recompute": self.recompute, "name": self.name, "dequantization": self.dequantization,
                "noise_sigma": self.noise_sigma}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ------------------------------------------------------------ likelihood
    def _scores(self, log_p, log_q=None):
        return weighting.scores(log_p, log_q, self.num_dims, self.n_bits)

    def log_prob_and_bpd(self, x_pre, log_q=None, labels=None, context=None):
        """`(log p(x), nll, bits/dim)` per example `[N]` for preprocessed data `x_pre [N, ...]`.

        With `log_q` (variational dequantization) `nll` is the bound `-log p + D n log 2 + log q`.
        A conditional flow scores `log p(x | c)` given `context` `c [N, K]` or `labels [N]`
        (graph-safe: the steps and the SavedModel call it).
        """
        input_checks.check_static_shape(self, x_pre.shape, "The preprocessed data")
        c = self._graph_context(labels, context)
        # The lean walk: the same number as `distribution.log_prob`, a much smaller graph.
        return self._scores(log_prob(self.distribution, x_pre, **self.bijector_kwargs(c)), log_q)

    @averaging.uses_averaged_weights
    def log_prob(self, x, labels=None, context=None):
        """`log p(x)` (`log p(x | c)` given `labels [N]` or `context [N, K]`) per example of raw
        data `x [N, ...]`, with the fixed noise."""
        x = self.check_batch(x)
        c = self.conditional_input(len(x), labels, context)
        x_pre, log_q = self.dequantize(x, fixed_noise=True)
        return self.log_prob_and_bpd(x_pre, log_q, context=c)[0]

    # -------------------------------------------------------- initialisation
    @property
    def is_initialized(self):
        return all(a.is_initialized for a in self._actnorm_layers)

    def initialize(self, batch, force=False, labels=None, context=None):
        """ActNorm data-dependent initialisation from one batch (explicit, eager).

        Run it outside `strategy.run` (as `fit` does): the assignments then reach every replica,
        so all replicas start from identical values. Uses fixed dequantization noise.

        Args:
          batch: raw data `[N, *event_shape]` (uint8 images or float vectors), or a batch
            `(x, y)` / dict whose `y` is a conditional flow's input.
          force: re-initialise already initialised layers.
          labels, context: a conditional flow's input (else the batch's `y`; a class-conditional
            model uses class 0 without one: its conditional layers start at zero, so the label
            changes nothing here).
        """
        x, y, _ = inputs.unpack(batch)
        x = self.check_batch(x)
        if labels is None and context is None and y is not None and self.is_conditional:
            labels, context = (y, None) if self.targets_are == "labels" else (None, y)
        c = self.conditional_input(len(x), labels, context, default="first")
        initialize_actnorm(self.distribution.bijector, self.preprocess(x, fixed_noise=True), force=force,
                           **self.bijector_kwargs(c))

    # ------------------------------------------------------------ Keras loop
    def fit(self, x=None, y=None, callbacks=None, validation_data=None, class_weight=None, **kwargs):
        """Keras `fit`, after checking the first batch and initialising ActNorm from it if needed.

        Takes every input Keras does (arrays, `tf.data`, `keras.utils.PyDataset`, generators;
        see `keras_inputs.peek_first_batch` for how the first batch is taken without spoiling
        it). A conditional flow takes its input as `y` (or in the dataset's elements), checked
        before any step. `sample_weight` and `class_weight` weight the loss: it is the weighted
        mean of the per-example bits/dim, `sum w_i bpd_i / sum w_i`. `class_weight` maps labels
        to weights as in Keras, so it needs labels: `fit(x, y, class_weight=...)` or a dataset
        of `(x, y)`; an unconditional flow itself does not use them.

        Adds a `callbacks.NaNGuard` (stop after `max_nonfinite_steps` skipped steps in a row)
        unless one is given.
        """
        if self.is_conditional:
            checked = self._check_fit_targets(x, y)
            y = checked if checked is not None and not isinstance(x, dict) else y
        elif class_weight is None:  # here labels only weight examples
            labels_lib.reject_labels(x, y)
        input_checks.check_keras_input(self, x, "The training data")
        input_checks.check_first_batch(self, validation_data, "validation_data")
        if class_weight is not None and inputs.lacks_labels(x, y):
            raise ValueError("class_weight maps labels to weights, and fit got no labels: pass fit(x, y, "
                             "class_weight=...), or give per-example weights with sample_weight=.")
        if not self.is_conditional:
            y = inputs.placeholder_targets(x, y, kwargs.get("sample_weight"))
        try:
            first, targets, x = inputs.first_batch(x, y)
        except keras_inputs.InputKindError:
            if not self.is_initialized:
                raise
        else:
            first = self.check_batch(first, "The training data (its first batch)")
            if not self.is_initialized:
                self.initialize((first, targets) if self.is_conditional and targets is not None else first)
        callbacks = list(callbacks or [])
        if self.max_nonfinite_steps is not None and not any(
                isinstance(c, callbacks_lib.NaNGuard) for c in callbacks):
            callbacks.append(callbacks_lib.NaNGuard(max_nonfinite_steps=self.max_nonfinite_steps))
        callbacks = input_checks.with_guard(callbacks)
        return super().fit(x, y, callbacks=callbacks, validation_data=validation_data, class_weight=class_weight,
                           **kwargs)

    @averaging.uses_averaged_weights
    def evaluate(self, x=None, *args, **kwargs):
        """Keras `evaluate`; an unbatched `tf.data.Dataset` is refused with a hint to batch it.
        With `sample_weight`, the figures are weighted means over the examples. With EMA on,
        the averaged weights are evaluated (in `fit`'s validation too, which calls this)."""
        input_checks.check_keras_input(self, x, "The evaluation data")
        if not args and not self.is_conditional:
            kwargs["y"] = inputs.placeholder_targets(x, kwargs.get("y"), kwargs.get("sample_weight"))
        if len(args) < 6:  # else the callbacks came positionally
            kwargs["callbacks"] = input_checks.with_guard(kwargs.get("callbacks"))
        return super().evaluate(x, *args, **kwargs)

    @averaging.uses_averaged_weights
    def predict(self, x, *args, **kwargs):
        """Keras `predict`: per-example `log_prob`, `nll`, `bits_per_dim`; an unbatched
        `tf.data.Dataset` is refused with a hint to batch it."""
        input_checks.check_keras_input(self, x, "The prediction data")
        if len(args) < 4:  # else the callbacks came positionally
            kwargs["callbacks"] = input_checks.with_guard(kwargs.get("callbacks"))
        return super().predict(x, *args, **kwargs)

    # ---------------------------------------------------- summary, files
    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Keras' `summary`, showing the flow: its levels and steps (Glow), or its bijectors,
        in the data -> latent order, with their shapes and parameter counts (`tfp_glow.training.summary`).

        Args are Keras': `expand_nested` lists the bijectors inside each step, `show_trainable`
        adds a trainable-parameter column, `layer_range` takes `[first, last]` row names,
        `print_fn` receives the whole text (default `print`); `positions` is accepted and
        unused (the columns are sized to fit).
        """
        text = summary_lib.format_summary(self, expand_nested=expand_nested, show_trainable=show_trainable,
                                          line_length=line_length, layer_range=layer_range)
        (print_fn or print)(text)

    def save_weights(self, filepath, *args, **kwargs):
        """Keras `save_weights`, plus the configuration recorded in the file for clear errors."""
        out = super().save_weights(filepath, *args, **kwargs)
        persistence.annotate_weights_file(self, filepath)
        return out

    def load_weights(self, filepath, *args, **kwargs):
        """Keras `load_weights`, refusing weights saved from a different configuration.

        Raises:
          ValueError: naming the saved and current configurations, before any weight is loaded.
        """
        if not kwargs.get("skip_mismatch", False):
            persistence.check_weights_compatible(self, filepath)
        return super().load_weights(filepath, *args, **kwargs)

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """Keras 3's `Model.export`, writing the flow's serving SavedModel.

        `format="tf_saved_model"` (the only one) writes `tfp_glow.serving.export_saved_model`:
        signatures `log_prob` (also `serving_default`), `sample`, `encode`, `decode`, and for
        images `log_prob_float`, `log_prob_image`, `encode_image`. Keras' generic export would
        serve `call` only, not the flow.

        Args:
          filepath: directory (`str` or path) to write.
          format: `"tf_saved_model"`; any other format raises a `ValueError`.
          verbose: print what was written (`None`: print, as Keras' TF SavedModel export does).
          input_signature: must be `None`: the signatures' inputs are fixed by the model.
          **kwargs: `signatures`, `serving_default`, `version` of `export_saved_model`.

        Returns:
          The directory written (`filepath`, or `filepath/version`).
        """
        if format != "tf_saved_model":
            raise ValueError(f"FlowModel.export writes format='tf_saved_model' only (a SavedModel with the "
                             f"flow's serving signatures); received format={format!r}.")
        if input_signature is not None:
            raise ValueError("FlowModel.export takes no input_signature: each serving signature has its own "
                             "inputs, fixed by the model (see tfp_glow.serving). Pass signatures=[...] to choose "
                             "which are written.")
        path = serving.export_saved_model(self, filepath, **kwargs)
        if verbose is None or verbose:
            names = kwargs.get("signatures") or serving.signature_names(self)
            names = ", ".join([names] if isinstance(names, str) else names)
            print(f"Saved the flow to {path} (signatures: {names}).")
        return path


def _dequantizer(dequantization, event_shape, n_bits):
    """`(dequantization, VariationalDequantizer or None)`, checked."""
    if dequantization not in dequantization_lib.DEQUANTIZATIONS:
        raise ValueError(f"dequantization must be one of {dequantization_lib.DEQUANTIZATIONS}; "
                         f"received {dequantization!r}.")
    if dequantization == "variational" and n_bits is None:
        raise ValueError("dequantization='variational' needs image data (n_bits); these are float vectors.")
    if dequantization != "variational":
        return dequantization, None
    return dequantization, dequantization_lib.VariationalDequantizer(event_shape, n_bits, name="dequantizer")

"""`FlowModel`: a Keras 3 model that trains any flow distribution with `fit` on `tf.data`.

Metrics (DESIGN.md): with data dequantized to `[-0.5, 0.5)` at `n_bits` bits,
`nll = -log p(x) + D log(2^n_bits)` nats per example (the discrete-data bound) and
`bits_per_dim = nll / (D ln 2)`. For raw float vectors (`n_bits=None`) `nll = -log p(x)`.
The training loss is the mean `bits_per_dim`.
"""
import math

import keras
import numpy as np
import tensorflow as tf

from tfp_glow import callbacks as callbacks_lib
from tfp_glow import data as data_lib
from tfp_glow import export, persistence, stability
from tfp_glow import labels as labels_lib
from tfp_glow.bijectors import initialize_actnorm, keras_layers, log_prob, set_recompute
from tfp_glow.bijectors.actnorm import ActNorm
from tfp_glow.distribute import multi_worker_safe_logs
from tfp_glow.models import FlowConfig, standard_normal


def _actnorms(module):
    return [m for m in module.submodules if isinstance(m, ActNorm)]


@keras.saving.register_keras_serializable(package="tfp_glow")
class FlowModel(keras.Model):
    """Keras model around a flow `tfd.TransformedDistribution` built from a `FlowConfig`.

    `fit`/`evaluate`/`predict` take `tf.data` pipelines (or arrays) of uint8 images
    `[N, H, W, C]` (with `n_bits`) or float vectors `[N, D]` (`n_bits=None`). Images are
    reduced to `n_bits`, then dequantized with uniform noise drawn inside the train step (so a
    cached dataset gets fresh noise every epoch). Evaluation uses one fixed noise pattern
    from `eval_seed` (`eval_noise`), so test figures repeat in every execution mode.

    Args:
      config: a `FlowConfig` (or its dict) naming the flow, event shape and builder arguments.
      n_bits: bit depth of image data (1..8), or `None` for float vectors.
      eval_seed: seed of the fixed evaluation noise.
      recompute: `None`, `"step"` or `"level"`: recompute those units' activations in the
        backward pass (`tf.recompute_grad`) so deep models fit in memory (Glow only).
      name: Keras name.

    Attributes:
      distribution: the `tfd.TransformedDistribution` (its `trainable_variables` are the same
        `tf.Variable`s as the Keras weights).
    """

    def __init__(self, config, n_bits=8, eval_seed=1234, recompute=None, name="flow_model", **kwargs):
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
        self.distribution = self.config_.build()
        self.latent_shape = tuple(self.distribution.distribution.event_shape.as_list())
        self.recompute = None if recompute in (None, "none") else recompute
        set_recompute(self.distribution.bijector, self.recompute)
        # Keras tracks Keras layers only; hand it every layer inside the bijectors.
        self.flow_layers = keras_layers(self.distribution)
        self._actnorm_layers = _actnorms(self.distribution.bijector)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self.bpd_tracker = keras.metrics.Mean(name="bits_per_dim")
        # Training-only logs, outside `metrics` so evaluation does not report them:
        # the mean gradient norm of the epoch's applied steps, and the running total of
        # skipped non-finite steps (never reset by Keras).
        self.grad_norm_tracker = keras.metrics.Mean(name="grad_norm")
        self.nonfinite_tracker = keras.metrics.Sum(name="nonfinite_steps")
        self.clip_norm = stability.DEFAULT_CLIP_NORM
        self.skip_nonfinite = True
        self.max_nonfinite_steps = stability.DEFAULT_MAX_NONFINITE_STEPS
        self.built = True

    # ----------------------------------------------------------------- config
    def get_config(self):
        return {"config": self.config_.to_dict(), "n_bits": self.n_bits, "eval_seed": self.eval_seed,
                "recompute": self.recompute, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ------------------------------------------------------------------ data
    @property
    def is_image(self):
        return self.n_bits is not None

    def eval_noise(self):
        """The fixed dequantization noise `u` of evaluation, one `[*event_shape]` pattern.

        Drawn once with numpy from `eval_seed` and broadcast over the batch, so an image scores
        the same whatever its batch, its position in it, and the kernel (eager, graph, XLA,
        SavedModel): test figures repeat exactly.
        """
        if getattr(self, "_eval_noise", None) is None:
            self._eval_noise = np.random.default_rng(self.eval_seed).uniform(size=self.event_shape).astype(np.float32)
        return tf.constant(self._eval_noise)

    def preprocess(self, x, fixed_noise=False):
        """Data as the flow sees it: dequantized images in `[-0.5, 0.5)` or float32 vectors.

        Args:
          x: uint8 (or integer-valued) images `[N, *event_shape]` with 8-bit levels, or float
            vectors `[N, D]`.
          fixed_noise: use `eval_noise()` (evaluation) instead of fresh `U[0, 1)` noise.
        """
        if not self.is_image:
            return tf.cast(x, tf.float32)
        levels = data_lib.reduce_bits(x, self.n_bits)
        noise = tf.broadcast_to(self.eval_noise(), tf.shape(levels)) if fixed_noise else None
        return data_lib.dequantize(levels, self.n_bits, noise=noise)

    def log_prob_and_bpd(self, x_pre):
        """`(log p(x), nll, bits/dim)` per example for preprocessed data `x_pre`."""
        # The lean walk: the same number as `distribution.log_prob`, a much smaller graph.
        log_p = tf.cast(log_prob(self.distribution, x_pre), tf.float32)
        nll = -log_p
        if self.is_image:
            nll = nll + self.num_dims * self.n_bits * math.log(2.0)
        return log_p, nll, nll / (self.num_dims * math.log(2.0))

    @staticmethod
    def _features(data):
        if isinstance(data, (tuple, list)):
            return data[0]
        if isinstance(data, dict):
            return data["image"] if "image" in data else data["x"]
        return data

    # --------------------------------------------------------------- steps
    def call(self, x, training=False):
        """Per-example `log p(x)` of the dequantized data (fixed noise unless `training`)."""
        x_pre = self.preprocess(x, fixed_noise=not training)
        return self.log_prob_and_bpd(x_pre)[0]

    @property
    def metrics(self):
        return [self.loss_tracker, self.nll_tracker, self.bpd_tracker]

    def _update_metrics(self, loss, nll, bpd):
        # weighted by the batch size, so `loss` is the per-example mean like the other two
        self.loss_tracker.update_state(loss, sample_weight=tf.cast(tf.shape(bpd)[0], tf.float32))
        self.nll_tracker.update_state(nll)
        self.bpd_tracker.update_state(bpd)
        # under MultiWorkerMirroredStrategy Keras reduces these along axis 0 (see distribute.py)
        return multi_worker_safe_logs({m.name: m.result() for m in self.metrics})

    def train_step(self, data):
        """One update: loss, gradients, clipping, and the update only if everything is finite.

        A non-finite loss or gradient (on any replica) skips the update: the weights, the
        optimizer state and its step counter stay as they were, `nonfinite_steps` counts it,
        and the epoch's metrics leave it out. All of it happens inside the compiled step.
        """
        x = self._features(data)
        with tf.GradientTape() as tape:
            _, nll, bpd = self.log_prob_and_bpd(self.preprocess(x))
            loss = tf.reduce_mean(bpd)
            # Keras sums the replicas' gradients: each replica contributes its share of the mean.
            ctx = tf.distribute.get_replica_context()
            replicas = ctx.num_replicas_in_sync if ctx is not None else 1
            scaled = loss / replicas
            lso = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
            if lso:
                scaled = self.optimizer.scale_loss(scaled)
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        if lso:  # clip and check the true gradients, then hand them back scaled
            scale = tf.cast(self.optimizer.dynamic_scale, tf.float32)
            grads = [None if g is None else g / tf.cast(scale, g.dtype) for g in grads]
        grads, grad_norm, finite = stability.clip_and_check(grads, loss, self.clip_norm)
        finite = stability.agree_across_replicas(finite)
        if lso:
            # the LossScaleOptimizer skips non-finite updates itself and must see them to
            # lower its scale
            self.optimizer.apply([None if g is None else g * tf.cast(scale, g.dtype) for g in grads], variables)
        elif self.skip_nonfinite:
            stability.apply_if_finite(self.optimizer, grads, variables, finite)
        else:
            self.optimizer.apply(grads, variables)
        return self._update_train_metrics(loss, nll, bpd, grad_norm, finite, replicas)

    def _update_train_metrics(self, loss, nll, bpd, grad_norm, finite, replicas):
        w = tf.cast(finite, tf.float32)
        safe = lambda v: tf.where(finite, v, tf.zeros_like(v))  # NaN * 0 would still be NaN
        n = tf.cast(tf.shape(bpd)[0], tf.float32)
        self.loss_tracker.update_state(safe(loss), sample_weight=n * w)
        self.nll_tracker.update_state(safe(nll), sample_weight=w * tf.ones_like(nll))
        self.bpd_tracker.update_state(safe(bpd), sample_weight=w * tf.ones_like(bpd))
        self.grad_norm_tracker.update_state(safe(grad_norm), sample_weight=w)
        # summed over replicas on read: each replica counts its share of the (agreed) skip
        self.nonfinite_tracker.update_state((1.0 - w) / replicas)
        logs = {m.name: m.result() for m in self.metrics}
        logs["grad_norm"] = self.grad_norm_tracker.result()
        logs["nonfinite_steps"] = self.nonfinite_tracker.result()
        return multi_worker_safe_logs(logs)

    def reset_metrics(self):
        super().reset_metrics()
        self.grad_norm_tracker.reset_state()  # per epoch; nonfinite_steps is a running total

    def test_step(self, data):
        x = self._features(data)
        _, nll, bpd = self.log_prob_and_bpd(self.preprocess(x, fixed_noise=True))
        return self._update_metrics(tf.reduce_mean(bpd), nll, bpd)

    def predict_step(self, data):
        x = self._features(data)
        log_p, nll, bpd = self.log_prob_and_bpd(self.preprocess(x, fixed_noise=True))
        return {"log_prob": log_p, "nll": nll, "bits_per_dim": bpd}

    def compile(self, optimizer=None, learning_rate=stability.DEFAULT_LEARNING_RATE,
                warmup_steps=stability.DEFAULT_WARMUP_STEPS, clip_norm=stability.DEFAULT_CLIP_NORM,
                skip_nonfinite=True, max_nonfinite_steps=stability.DEFAULT_MAX_NONFINITE_STEPS,
                jit_compile="auto", **kwargs):
        """Keras `compile` with the flow defaults that make training stable by construction.

        Args:
          optimizer: a Keras optimizer (not yet built) or name; default `Adam(learning_rate)`.
          learning_rate: the learning rate of the default optimizer.
          warmup_steps: linear learning-rate warmup over this many optimizer steps
            (`stability.LinearWarmup`, openai/glow's); it wraps the optimizer's learning rate,
            whatever optimizer is given. 0 turns it off.
          clip_norm: clip the gradients to this global norm (`None` or 0: off). The norm
            before clipping is logged as `grad_norm`.
          skip_nonfinite: never apply an update with a non-finite loss or gradient: skip the
            step inside the compiled function and count it in the `nonfinite_steps` log.
            (Under `mixed_float16` the `LossScaleOptimizer` skips such steps itself.)
          max_nonfinite_steps: `fit` stops with `callbacks.NonFiniteLossError` after this many
            non-finite steps in a row (`None`: never).
          jit_compile: `"auto"` turns XLA on where it is faster: on GPUs. On CPU it stays off:
            XLA's CPU convolutions are slower than TensorFlow's oneDNN kernels (measured on
            the bench Glow, L=2, K=4, 400 hidden, 28x28, batch 64, 2 cores: 73 img/s and a
            10.4 s first step with XLA against 112 img/s and 5.8 s without), and XLA does not
            mix with mirrored variables over CPU devices (DESIGN.md, Speed).
          **kwargs: passed to `keras.Model.compile`.

        Under a `mixed_float16` policy the optimizer is wrapped in a `LossScaleOptimizer`.
        """
        if clip_norm is not None and not (isinstance(clip_norm, (int, float)) and clip_norm >= 0):
            raise ValueError(f"clip_norm must be a non-negative float or None; received {clip_norm!r}.")
        if not (isinstance(warmup_steps, (int, np.integer)) and warmup_steps >= 0):
            raise ValueError(f"warmup_steps must be an int >= 0; received {warmup_steps!r}.")
        if max_nonfinite_steps is not None and not (
                isinstance(max_nonfinite_steps, (int, np.integer)) and max_nonfinite_steps >= 1):
            raise ValueError(f"max_nonfinite_steps must be an int >= 1 or None; received {max_nonfinite_steps!r}.")
        if optimizer is None:
            optimizer = keras.optimizers.Adam(learning_rate)
        elif isinstance(optimizer, str):
            optimizer = keras.optimizers.get({"class_name": optimizer, "config": {"learning_rate": learning_rate}})
        optimizer = stability.with_warmup(optimizer, int(warmup_steps))
        if keras.mixed_precision.dtype_policy().name == "mixed_float16" and not isinstance(
                optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        self.clip_norm = float(clip_norm) if clip_norm else None
        self.skip_nonfinite = bool(skip_nonfinite)
        self.max_nonfinite_steps = None if max_nonfinite_steps is None else int(max_nonfinite_steps)
        if jit_compile == "auto":
            jit_compile = bool(tf.config.list_physical_devices("GPU"))
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)
        if not self.optimizer.built:
            # Now, eagerly: creating the slot variables inside the first trace costs seconds.
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    # -------------------------------------------------------- initialisation
    @property
    def is_initialized(self):
        return all(a.is_initialized for a in self._actnorm_layers)

    def initialize(self, batch, force=False):
        """ActNorm data-dependent initialisation from one batch (explicit, eager).

        Run it outside `strategy.run` (as `fit` does): the assignments then reach every replica,
        so all replicas start from identical values. Uses fixed dequantization noise.

        Args:
          batch: a batch of raw data `[N, *event_shape]` (uint8 images or float vectors).
          force: re-initialise already initialised layers.
        """
        x = self.check_batch(self._features(batch))
        initialize_actnorm(self.distribution.bijector, self.preprocess(x, fixed_noise=True), force=force)

    def check_batch(self, x):
        """Raise a clear `ValueError` if a batch does not fit the model; returns it as a tensor."""
        x = tf.convert_to_tensor(x)
        got = tuple(x.shape[1:])
        if got != self.event_shape:
            raise ValueError(
                f"Data of shape {[None, *got]} does not fit this model, which expects "
                f"{[None, *self.event_shape]} ({self.config_.flow} on event shape {list(self.event_shape)}).")
        # the data module's checks (numeric, finite, whole 8-bit levels), on a flat view so any
        # event rank fits them
        flat = x.numpy().reshape(len(x), -1)
        if self.is_image:
            data_lib.validate_images(flat[:, :, None, None])
        else:
            data_lib.validate_vectors(flat)
        return x

    def _first_batch(self, x):
        if isinstance(x, tf.data.Dataset):
            for batch in x.take(1):
                return self._features(batch)
            raise ValueError("The dataset is empty: no batch to train on.")
        x = self._features(x)
        if x is None or len(x) == 0:
            raise ValueError("The dataset is empty: no examples to train on.")
        return x[:256]

    def fit(self, x=None, y=None, callbacks=None, **kwargs):
        """Keras `fit`, after checking the first batch and initialising ActNorm from it if needed.

        Adds a `callbacks.NaNGuard` (stop after `max_nonfinite_steps` skipped steps in a row)
        unless one is given.
        """
        if not getattr(self, "num_classes", 0):  # a class-conditional model is a ConditionalFlowModel
            labels_lib.reject_labels(x, y)
        first = self.check_batch(self._first_batch(x))
        if not self.is_initialized:
            self.initialize(first)
        callbacks = list(callbacks or [])
        if self.max_nonfinite_steps is not None and not any(
                isinstance(c, callbacks_lib.NaNGuard) for c in callbacks):
            callbacks.append(callbacks_lib.NaNGuard(max_nonfinite_steps=self.max_nonfinite_steps))
        return super().fit(x, y, callbacks=callbacks, **kwargs)

    def compile_from_config(self, config):
        """Recompile after `keras.models.load_model`, so the optimizer state is restored too."""
        persistence.compile_from_config(self, config)

    def save_weights(self, filepath, *args, **kwargs):
        """Keras `save_weights`, plus the configuration recorded in the file for clear errors."""
        out = super().save_weights(filepath, *args, **kwargs)
        persistence.annotate_weights_file(self, filepath)
        return out

    def export(self, filepath, **kwargs):
        """Write a SavedModel with `log_prob`, `sample`, `encode`, `decode` signatures
        (`tfp_glow.export.export_saved_model`); Keras' own `Model.export` would not serve the flow."""
        return export.export_saved_model(self, filepath, **kwargs)

    def load_weights(self, filepath, *args, **kwargs):
        """Keras `load_weights`, refusing weights saved from a different configuration.

        Raises:
          ValueError: naming the saved and current configurations, before any weight is loaded.
        """
        if not kwargs.get("skip_mismatch", False):
            persistence.check_weights_compatible(self, filepath)
        return super().load_weights(filepath, *args, **kwargs)

    # ------------------------------------------------------ sample/encode
    def sample(self, n, temperature=1.0, seed=None):
        """`n` samples in the flow's data space (`[-0.5, 0.5)` for images), latent `~ N(0, T^2)`.

        Args:
          n: Python int.
          temperature: standard deviation `T` of the base distribution.
          seed: int seed for repeatable samples.
        """
        z = standard_normal(self.latent_shape, scale=temperature).sample(n, seed=seed)
        return self.decode(z)

    def sample_images(self, n, temperature=1.0, seed=None):
        """`n` samples as uint8 images `[n, H, W, C]` (0..255)."""
        return data_lib.to_uint8(self.sample(n, temperature, seed), self.n_bits)

    @tf.function(reduce_retracing=True)
    def decode(self, z):
        """Latent `[N, *latent_shape]` -> data (`bijector.forward`)."""
        return self.distribution.bijector.forward(z)

    def encode(self, x):
        """Raw data `[N, *event_shape]` -> latent (`bijector.inverse`), with the fixed noise."""
        x_pre = self.preprocess(x, fixed_noise=True)
        return self.distribution.bijector.inverse(x_pre)

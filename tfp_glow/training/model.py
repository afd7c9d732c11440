"""`FlowModel`: a Keras 3 model that trains any flow distribution with `fit` on `tf.data`.

Metrics (DESIGN.md): with data dequantized to `[-0.5, 0.5)` at `n_bits` bits,
`nll = -log p(x) + D log(2^n_bits)` nats per example (the discrete-data bound) and
`bits_per_dim = nll / (D ln 2)`. For raw float vectors (`n_bits=None`) `nll = -log p(x)`.
The training loss is the mean `bits_per_dim` (the weighted mean under `sample_weight` or
`class_weight`).
"""
import inspect
import math
import os
import random

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import config as tf_framework_config

from tfp_glow import callbacks as callbacks_lib
from tfp_glow import data as data_lib
from tfp_glow import dequantization as dequantization_lib
from tfp_glow import averaging, export, keras_inputs, persistence, stability
from tfp_glow import summary as summary_lib
from tfp_glow import labels as labels_lib
from tfp_glow import latent as latent_lib
from tfp_glow.bijectors import initialize_actnorm, keras_layers, log_prob, set_recompute
from tfp_glow.bijectors.actnorm import ActNorm
from tfp_glow.distribute import multi_worker_safe_logs
from tfp_glow.models import FlowConfig


def _actnorms(module):
    return [m for m in module.submodules if isinstance(m, ActNorm)]


def op_determinism_enabled():
    """True after `tf.config.experimental.enable_op_determinism()` (or `TF_DETERMINISTIC_OPS=1`).

    TensorFlow has no public getter: this reads `tensorflow.python.framework.config`'s, and
    falls back to the environment variable if a release drops it.
    """
    getter = getattr(tf_framework_config, "is_op_determinism_enabled", None)
    if getter is not None and getter():
        return True
    return os.environ.get("TF_DETERMINISTIC_OPS", "0").lower() in ("1", "true")


def resolve_jit_compile(jit_compile):
    """`FlowModel.compile`'s `jit_compile`, with `"auto"` resolved to a bool.

    `"auto"` is XLA on GPUs, except when op determinism is enabled; off on CPU (see
    `FlowModel.compile`).
    """
    if jit_compile == "auto":
        return bool(tf.config.list_physical_devices("GPU")) and not op_determinism_enabled()
    if not isinstance(jit_compile, (bool, np.bool_)):
        raise ValueError(f"jit_compile must be True, False or 'auto'; received {jit_compile!r}.")
    return bool(jit_compile)


def _refuse_keras_losses(**given):
    """`compile`'s Keras loss/metric arguments have no meaning for a flow: refuse them clearly."""
    given = {k: v for k, v in given.items() if v not in (None, [], {}, ())}
    if given:
        names = ", ".join(f"{k}={v!r}" for k, v in given.items())
        raise ValueError(
            f"FlowModel.compile got {names}, which it cannot use: a flow is trained on its own loss, the "
            f"negative log-likelihood in bits/dim, and has no targets for a Keras loss or metric to compare "
            f"with. Its logs are `loss` (the bits/dim being minimised), `nll` and `bits_per_dim`. Remove "
            f"these arguments; to weight examples, pass sample_weight= or class_weight= to fit/evaluate.")


def _lacks_labels(x, y):
    """True when `fit` visibly has no labels for `class_weight` (arrays without `y`, or a
    dataset of bare features)."""
    if isinstance(x, tf.data.Dataset):
        return keras.utils.unpack_x_y_sample_weight(x.element_spec)[1] is None
    if isinstance(x, keras.utils.PyDataset) or inspect.isgenerator(x):
        return False  # not visible without drawing a batch; Keras checks them itself
    return y is None


def _placeholder_targets(x, y, sample_weight):
    """`y`, or zeros `[N]` when array input has `sample_weight` but no labels.

    Keras packs array input without `y` as `x` alone and drops `sample_weight` silently
    (`keras.utils.pack_x_y_sample_weight`); an unconditional flow has no labels, so it gets
    placeholder ones, which the steps ignore, and the weights reach the loss.
    """
    if y is not None or sample_weight is None or isinstance(x, (tf.data.Dataset, keras.utils.PyDataset)):
        return y
    features = x["image"] if isinstance(x, dict) and "image" in x else (x["x"] if isinstance(x, dict) else x)
    return np.zeros([len(features)], np.float32)


def _weights_across_replicas(sample_weight):
    """True for a weighted step under several replicas (see `_global_weighted_means`)."""
    ctx = tf.distribute.get_replica_context()
    return sample_weight is not None and ctx is not None and ctx.num_replicas_in_sync > 1


def _global_weighted_means(sample_weight, *values):
    """Under several replicas with `sample_weight`: the global weighted means of `values`
    (`[N]` each) and the global weight, identical on every replica; else `None`.

    `fit` logs a metric as the mean of the replicas' step results, which is the global mean
    only when every replica holds the same weight; with uneven sample weights each replica
    logs the global figure instead (one all-reduce a value, only on this path).
    """
    if not _weights_across_replicas(sample_weight):
        return None
    ctx = tf.distribute.get_replica_context()
    total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(sample_weight))
    means = [tf.math.divide_no_nan(ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(sample_weight * v)), total)
             for v in values]
    return (*means, total)


def _per_example(sample_weight, bpd):
    """Keras' `sample_weight` (`[N]` or `[N, 1]`) as float32 `[N]`."""
    return tf.reshape(tf.cast(sample_weight, tf.float32), tf.shape(bpd))


def _weighted_mean(bpd, sample_weight, ctx, replicas):
    """The loss under `sample_weight`: `sum_i w_i bpd_i / sum_i w_i` over the global batch.

    Returns `(loss, scaled, w)`: this replica's weighted mean (for the logs), its share of
    the global weighted mean (what its gradients come from: Keras sums the replicas'), and
    the weights `[N]`. All-zero weights give a zero loss and zero gradients, not NaN.
    """
    w = _per_example(sample_weight, bpd)
    local_sum, local_w = tf.reduce_sum(w * bpd), tf.reduce_sum(w)
    global_w = ctx.all_reduce(tf.distribute.ReduceOp.SUM, local_w) if replicas > 1 else local_w
    return tf.math.divide_no_nan(local_sum, local_w), tf.math.divide_no_nan(local_sum, global_w), w


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
      dequantization: `"uniform"` (`u ~ U[0, 1)`) or `"variational"` (images only: a learned
        `q(u | x)`, `dequantization.VariationalDequantizer`, trained jointly; `nll` and
        `bits_per_dim` are then the variational bound, `+ log q(u | x)`).
      name: Keras name.

    Attributes:
      distribution: the `tfd.TransformedDistribution` (its `trainable_variables` are the same
        `tf.Variable`s as the Keras weights).
      ema_decay, weight_average: the decay of the weight average and its
        `averaging.WeightAverage` (`compile(ema_decay=...)`; `None` when off).
    """

    def __init__(self, config, n_bits=8, eval_seed=1234, recompute=None, name="flow_model",
                 dequantization="uniform", **kwargs):
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
        if dequantization not in dequantization_lib.DEQUANTIZATIONS:
            raise ValueError(f"dequantization must be one of {dequantization_lib.DEQUANTIZATIONS}; "
                             f"received {dequantization!r}.")
        if dequantization == "variational" and n_bits is None:
            raise ValueError("dequantization='variational' needs image data (n_bits); these are float vectors.")
        self.dequantization = dequantization
        self.dequantizer = (dequantization_lib.VariationalDequantizer(self.event_shape, self.n_bits,
                                                                      name="dequantizer")
                            if dequantization == "variational" else None)
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
        self.ema_decay = None  # compile(ema_decay=...): the averages, if any, are `weight_average`
        self.weight_average = None
        self.built = True

    # ----------------------------------------------------------------- config
    def get_config(self):
        return {"config": self.config_.to_dict(), "n_bits": self.n_bits, "eval_seed": self.eval_seed,
                "recompute": self.recompute, "name": self.name, "dequantization": self.dequantization}

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

    def preprocess(self, x, fixed_noise=False, seed=None):
        """Data as the flow sees it: dequantized images in `[-0.5, 0.5)` or float32 vectors.

        Args:
          x: uint8 (or integer-valued) images `[N, *event_shape]` with 8-bit levels, or float
            vectors `[N, D]`.
          fixed_noise: use `eval_noise()` (evaluation) instead of fresh `U[0, 1)` noise.
          seed: stateless seed `[2]` of the fresh noise (the train step passes
            `train_noise_seed()`); `None` draws it with the stateful `tf.random.uniform`.
        """
        if not self.is_image:
            return tf.cast(x, tf.float32)
        levels = data_lib.reduce_bits(x, self.n_bits)
        if fixed_noise:
            return data_lib.dequantize(levels, self.n_bits, noise=tf.broadcast_to(self.eval_noise(), tf.shape(levels)))
        return data_lib.dequantize(levels, self.n_bits, seed=seed)

    def train_noise_seed(self):
        """The stateless seed `[2]` of this train step's dequantization noise.

        `[noise_seed, optimizer.iterations]`, folded with the replica id under a multi-replica
        strategy: the noise is a function of the step, so seeded training repeats exactly,
        with and without XLA (stateful `tf.random` ops ignore their seed under XLA), and a
        run resumed from a checkpoint draws the noise the uninterrupted run would have drawn.
        """
        step = tf.cast(self.optimizer.iterations, tf.int32)
        seed = tf.stack([tf.constant(getattr(self, "noise_seed", 0), tf.int32), step])
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            seed = tf.random.experimental.stateless_fold_in(seed, ctx.replica_id_in_sync_group)
        return seed

    def dequantize(self, x, fixed_noise=False, seed=None):
        """`(x_pre, log_q)`: the flow's input and `log q(u | x)` per example (`None` when uniform).

        Uniform: `(preprocess(x, fixed_noise), None)`. Variational: `u ~ q(. | x)` from a base
        draw that is fresh `U[0, 1)` noise, or `eval_noise()` with `fixed_noise` (at
        initialisation `q` is uniform and `u` is then that very noise).
        """
        if self.dequantizer is None:
            return self.preprocess(x, fixed_noise=fixed_noise, seed=seed), None
        levels = data_lib.reduce_bits(x, self.n_bits)
        if fixed_noise:
            v = tf.broadcast_to(self.eval_noise(), tf.shape(levels))
        elif seed is not None:  # the train step's stateless seed (repeatable with and without XLA)
            v = tf.random.stateless_uniform(tf.shape(levels), seed=seed, dtype=tf.float32)
        else:
            v = tf.random.uniform(tf.shape(levels), dtype=tf.float32)
        u, log_q = self.dequantizer.sample_with_log_prob(levels, v)
        return data_lib.dequantize(levels, self.n_bits, noise=u), log_q

    def log_prob_and_bpd(self, x_pre, log_q=None):
        """`(log p(x), nll, bits/dim)` per example for preprocessed data `x_pre`; with
        `log_q` (variational dequantization) `nll` is the bound `-log p + D n log 2 + log q`."""
        # The lean walk: the same number as `distribution.log_prob`, a much smaller graph.
        log_p = tf.cast(log_prob(self.distribution, x_pre), tf.float32)
        nll = -log_p
        if self.is_image:
            nll = nll + self.num_dims * self.n_bits * math.log(2.0)
        if log_q is not None:
            nll = nll + log_q
        return log_p, nll, nll / (self.num_dims * math.log(2.0))

    @staticmethod
    def _features(data):
        if isinstance(data, (tuple, list)):
            return data[0]
        if isinstance(data, dict):
            return data["image"] if "image" in data else data["x"]
        return data

    @classmethod
    def _unpack(cls, data):
        """`(features, y, sample_weight)` of a batch as Keras hands it to the steps."""
        x, y, sw = keras.utils.unpack_x_y_sample_weight(data)
        return cls._features(x), y, sw

    # --------------------------------------------------------------- steps
    def call(self, x, training=False):
        """Per-example `log p(x)` of the dequantized data (fixed noise unless `training`)."""
        return self.log_prob_and_bpd(*self.dequantize(x, fixed_noise=not training))[0]

    @property
    def metrics(self):
        return [self.loss_tracker, self.nll_tracker, self.bpd_tracker]

    def _update_metrics(self, loss, nll, bpd, sample_weight=None):
        # weighted by the batch size (or its total sample weight), so `loss` is the per-example
        # (weighted) mean like the other two
        n = tf.cast(tf.shape(bpd)[0], tf.float32) if sample_weight is None else tf.reduce_sum(sample_weight)
        # (evaluate reads the metrics' replica-summed state afterwards: right with any weights)
        self.loss_tracker.update_state(loss, sample_weight=n)
        self.nll_tracker.update_state(nll, sample_weight=sample_weight)
        self.bpd_tracker.update_state(bpd, sample_weight=sample_weight)
        # under MultiWorkerMirroredStrategy Keras reduces these along axis 0 (see distribute.py)
        return multi_worker_safe_logs({m.name: m.result() for m in self.metrics})

    def train_step(self, data):
        """One update: loss, gradients, clipping, and the update only if everything is finite.

        A non-finite loss or gradient (on any replica) skips the update: the weights, the
        optimizer state and its step counter (and the weight average) stay as they were,
        `nonfinite_steps` counts it, and the epoch's metrics leave it out. All of it happens
        inside the compiled step.
        """
        x, _, sample_weight = self._unpack(data)
        with tf.GradientTape() as tape:
            _, nll, bpd = self.log_prob_and_bpd(*self.dequantize(x, seed=self.train_noise_seed()))
            # Keras sums the replicas' gradients: each replica contributes its share of the mean.
            ctx = tf.distribute.get_replica_context()
            replicas = ctx.num_replicas_in_sync if ctx is not None else 1
            if sample_weight is None:
                loss = tf.reduce_mean(bpd)
                scaled = loss / replicas
            else:
                loss, scaled, sample_weight = _weighted_mean(bpd, sample_weight, ctx, replicas)
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
            averaging.update(self, applied=finite)
        elif self.skip_nonfinite:
            stability.apply_if_finite(self.optimizer, grads, variables, finite, on_apply=lambda: averaging.update(self))
        else:
            self.optimizer.apply(grads, variables)
            averaging.update(self)
        return self._update_train_metrics(loss, nll, bpd, grad_norm, finite, replicas, sample_weight)

    def _update_train_metrics(self, loss, nll, bpd, grad_norm, finite, replicas, sample_weight=None):
        w = tf.cast(finite, tf.float32)
        safe = lambda v: tf.where(finite, v, tf.zeros_like(v))  # NaN * 0 would still be NaN
        per_example = tf.ones_like(bpd) if sample_weight is None else sample_weight
        n = tf.reduce_sum(per_example)
        if _weights_across_replicas(sample_weight):
            nll_mean, bpd_mean, total = _global_weighted_means(sample_weight, safe(nll), safe(bpd))
            for tracker, value in ((self.loss_tracker, bpd_mean), (self.nll_tracker, nll_mean),
                                   (self.bpd_tracker, bpd_mean)):
                tracker.update_state(value, sample_weight=total * w)
        else:
            self.loss_tracker.update_state(safe(loss), sample_weight=n * w)
            self.nll_tracker.update_state(safe(nll), sample_weight=w * per_example)
            self.bpd_tracker.update_state(safe(bpd), sample_weight=w * per_example)
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
        x, _, sample_weight = self._unpack(data)
        _, nll, bpd = self.log_prob_and_bpd(*self.dequantize(x, fixed_noise=True))
        if sample_weight is None:
            return self._update_metrics(tf.reduce_mean(bpd), nll, bpd)
        sample_weight = _per_example(sample_weight, bpd)
        loss = tf.math.divide_no_nan(tf.reduce_sum(sample_weight * bpd), tf.reduce_sum(sample_weight))
        return self._update_metrics(loss, nll, bpd, sample_weight)

    def predict_step(self, data):
        x, _, _ = self._unpack(data)
        log_p, nll, bpd = self.log_prob_and_bpd(*self.dequantize(x, fixed_noise=True))
        return {"log_prob": log_p, "nll": nll, "bits_per_dim": bpd}

    def compile(self, optimizer=None, learning_rate=stability.DEFAULT_LEARNING_RATE,
                warmup_steps=stability.DEFAULT_WARMUP_STEPS, clip_norm=stability.DEFAULT_CLIP_NORM,
                skip_nonfinite=True, max_nonfinite_steps=stability.DEFAULT_MAX_NONFINITE_STEPS,
                jit_compile="auto", seed=None, ema_decay=None, lr_schedule="constant", total_steps=None,
                loss=None, metrics=None, loss_weights=None, weighted_metrics=None, **kwargs):
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
          jit_compile: `"auto"` turns XLA on where it is faster: on GPUs, unless op determinism
            is enabled (`tf.config.experimental.enable_op_determinism()`): XLA's GPU kernels
            are not all deterministic, so a user who asked for bitwise-repeatable training
            keeps TensorFlow's deterministic kernels. On CPU it stays off:
            XLA's CPU convolutions are slower than TensorFlow's oneDNN kernels (measured on
            the bench Glow, L=2, K=4, 400 hidden, 28x28, batch 64, 2 cores: 73 img/s and a
            10.4 s first step with XLA against 112 img/s and 5.8 s without), and XLA does not
            mix with mirrored variables over CPU devices (DESIGN.md, Speed). The value used
            is `model.jit_compile` afterwards.
          seed: base seed of the training dequantization noise (`train_noise_seed`); `None`
            draws one from Python's `random`, which `keras.utils.set_random_seed` seeds. Seeded
            training then repeats exactly, with or without XLA.
          ema_decay: a float in (0, 1) (e.g. 0.999) keeps an exponential moving average of the
            trainable variables, updated in the train step (`averaging.WeightAverage`, with a
            warmed-up decay); `evaluate` (also `fit`'s validation), `predict`, `sample`,
            `encode`, `decode` and `export` then use the averages (`averaged_weights()`).
            `None` or 0: off. A recompile must pass it again to keep it on.
          lr_schedule: `"constant"`, or `"cosine"`: after the warmup, a float learning rate
            decays along a half cosine to 0 at `total_steps` (`stability.CosineDecayAfterWarmup`).
            For any other schedule pass an optimizer with a `LearningRateSchedule`.
          total_steps: the run's optimizer steps (epochs x steps per epoch), for `"cosine"` only.
          loss, metrics, loss_weights, weighted_metrics: refused (`ValueError`): the loss is
            the model's own negative log-likelihood in bits/dim, and there are no targets
            for Keras metrics to compare with. Its logs are `loss`, `nll`, `bits_per_dim`.
          **kwargs: passed to `keras.Model.compile`.

        Under a `mixed_float16` policy the optimizer is wrapped in a `LossScaleOptimizer`.
        """
        _refuse_keras_losses(loss=loss, metrics=metrics, loss_weights=loss_weights,
                             weighted_metrics=weighted_metrics)
        averaging.check_decay(ema_decay)
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
        optimizer = stability.with_schedule(optimizer, int(warmup_steps), lr_schedule, total_steps)
        if keras.mixed_precision.dtype_policy().name == "mixed_float16" and not isinstance(
                optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        self.clip_norm = float(clip_norm) if clip_norm else None
        self.skip_nonfinite = bool(skip_nonfinite)
        self.max_nonfinite_steps = None if max_nonfinite_steps is None else int(max_nonfinite_steps)
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an int or None; received {seed!r}.")
        self.noise_seed = int(random.randrange(2**31 - 1) if seed is None else seed) % (2**31 - 1)
        jit_compile = resolve_jit_compile(jit_compile)
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)
        if not self.optimizer.built:
            # Now, eagerly: creating the slot variables inside the first trace costs seconds.
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)
        averaging.attach(self, ema_decay)

    def get_compile_config(self):
        """Keras' compile config, with `ema_decay` (so a `.keras` file reloads with its averages)."""
        config = super().get_compile_config()
        if config is not None and self.ema_decay:
            config["ema_decay"] = self.ema_decay
        return config

    def averaged_weights(self):
        """A context manager: its block runs with the weight average in the model's variables,
        and the raw weights come back however it ends (`averaging.averaged_weights`). A no-op
        when EMA is off (`compile(ema_decay=None)`) or before the first step. Do not train or
        save inside it."""
        return averaging.averaged_weights(self)

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

    def fit(self, x=None, y=None, callbacks=None, validation_data=None, class_weight=None, **kwargs):
        """Keras `fit`, after checking the first batch and initialising ActNorm from it if needed.

        Takes every input Keras does (arrays, `tf.data`, `keras.utils.PyDataset`, generators;
        see `keras_inputs.peek_first_batch` for how the first batch is taken without spoiling
        it). `sample_weight` and `class_weight` weight the loss: it is the weighted mean of
        the per-example bits/dim, `sum w_i bpd_i / sum w_i`. `class_weight` maps labels to
        weights as in Keras, so it needs labels: `fit(x, y, class_weight=...)` or a dataset
        of `(x, y)`; the flow itself does not use them.

        Adds a `callbacks.NaNGuard` (stop after `max_nonfinite_steps` skipped steps in a row)
        unless one is given.
        """
        if not getattr(self, "num_classes", 0) and class_weight is None:
            # A class-conditional model is a ConditionalFlowModel; here labels only weight examples.
            labels_lib.reject_labels(x, y)
        keras_inputs.check_batched(x, self.event_shape, "the training dataset")
        keras_inputs.check_batched(validation_data, self.event_shape, "validation_data")
        if class_weight is not None and _lacks_labels(x, y):
            raise ValueError("class_weight maps labels to weights, and fit got no labels: pass fit(x, y, "
                             "class_weight=...), or give per-example weights with sample_weight=.")
        y = _placeholder_targets(x, y, kwargs.get("sample_weight"))
        try:
            first, x = keras_inputs.peek_first_batch(x, lambda batch: self._unpack(batch)[0])
        except keras_inputs.InputKindError:
            if not self.is_initialized:
                raise
        else:
            first = self.check_batch(first)
            if not self.is_initialized:
                self.initialize(first)
        callbacks = list(callbacks or [])
        if self.max_nonfinite_steps is not None and not any(
                isinstance(c, callbacks_lib.NaNGuard) for c in callbacks):
            callbacks.append(callbacks_lib.NaNGuard(max_nonfinite_steps=self.max_nonfinite_steps))
        return super().fit(x, y, callbacks=callbacks, validation_data=validation_data, class_weight=class_weight,
                           **kwargs)

    @averaging.uses_averaged_weights
    def evaluate(self, x=None, *args, **kwargs):
        """Keras `evaluate`; an unbatched `tf.data.Dataset` is refused with a hint to batch it.
        With `sample_weight`, the figures are weighted means over the examples. With EMA on,
        the averaged weights are evaluated (in `fit`'s validation too, which calls this)."""
        keras_inputs.check_batched(x, self.event_shape, "the evaluation dataset")
        if not args:
            kwargs["y"] = _placeholder_targets(x, kwargs.get("y"), kwargs.get("sample_weight"))
        return super().evaluate(x, *args, **kwargs)

    @averaging.uses_averaged_weights
    def predict(self, x, *args, **kwargs):
        """Keras `predict`: per-example `log_prob`, `nll`, `bits_per_dim`; an unbatched
        `tf.data.Dataset` is refused with a hint to batch it."""
        keras_inputs.check_batched(x, self.event_shape, "the prediction dataset")
        return super().predict(x, *args, **kwargs)

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Keras' `summary`, showing the flow: its levels and steps (Glow), or its bijectors,
        in the data -> latent order, with their shapes and parameter counts (`tfp_glow.summary`).

        Args are Keras': `expand_nested` lists the bijectors inside each step, `show_trainable`
        adds a trainable-parameter column, `layer_range` takes `[first, last]` row names,
        `print_fn` receives the whole text (default `print`); `positions` is accepted and
        unused (the columns are sized to fit).
        """
        text = summary_lib.format_summary(self, expand_nested=expand_nested, show_trainable=show_trainable,
                                          line_length=line_length, layer_range=layer_range)
        (print_fn or print)(text)

    def compile_from_config(self, config):
        """Recompile after `keras.models.load_model`, so the optimizer state is restored too."""
        persistence.compile_from_config(self, config)

    def save_weights(self, filepath, *args, **kwargs):
        """Keras `save_weights`, plus the configuration recorded in the file for clear errors."""
        out = super().save_weights(filepath, *args, **kwargs)
        persistence.annotate_weights_file(self, filepath)
        return out

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """Keras 3's `Model.export`, writing the flow's serving SavedModel.

        `format="tf_saved_model"` (the only one) writes `tfp_glow.export.export_saved_model`:
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
                             "inputs, fixed by the model (see tfp_glow.export). Pass signatures=[...] to choose "
                             "which are written.")
        path = export.export_saved_model(self, filepath, **kwargs)
        if verbose is None or verbose:
            names = kwargs.get("signatures") or export.signature_names(self)
            names = ", ".join([names] if isinstance(names, str) else names)
            print(f"Saved the flow to {path} (signatures: {names}).")
        return path

    def load_weights(self, filepath, *args, **kwargs):
        """Keras `load_weights`, refusing weights saved from a different configuration.

        Raises:
          ValueError: naming the saved and current configurations, before any weight is loaded.
        """
        if not kwargs.get("skip_mismatch", False):
            persistence.check_weights_compatible(self, filepath)
        return super().load_weights(filepath, *args, **kwargs)

    # ------------------------------------------------------ sample/encode
    @averaging.uses_averaged_weights
    def sample(self, n, temperature=1.0, seed=None, level_temperatures=None):
        """`n` samples in the flow's data space (`[-0.5, 0.5)` for images), latent `~ N(0, T^2)`.

        `z = T * eps`, `eps = tf.random.stateless_normal([n, *latent_shape], seed)`,
        then `x = bijector.forward(z)`. As in TFP, a batch of temperatures is a batch of base
        distributions (`Normal(0, T)` with batch shape `T.shape`), so the result has shape
        `[n, *T.shape, *event_shape]`; a scalar `T` gives `[n, *event_shape]`. Every
        temperature decodes the same `eps` for a given seed, so a row of samples shows one
        latent at several temperatures.

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

        References:
          Kingma & Dhariwal, "Glow", NeurIPS 2018 (temperature `T`: sampling from `N(0, T^2)`).
        """
        z, batch = self._draw_base(n, temperature, seed, level_temperatures)
        x = self.decode(z)
        return tf.reshape(x, [n, *batch, *self.event_shape])

    def _draw_base(self, n, temperature, seed, level_temperatures):
        """`(z [n * prod(T.shape), *latent_shape], T.shape)`: the latents `sample` decodes, `n`-major."""
        if not (isinstance(n, (int, np.integer)) and n >= 0):
            raise ValueError(f"n must be an int >= 0; received {n!r}.")
        temperature = np.asarray(temperature, np.float32)
        if not np.all(np.isfinite(temperature)) or np.any(temperature < 0):
            raise ValueError(f"temperature must be finite and >= 0; received {temperature.tolist()!r}.")
        if seed is None:
            seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
        else:
            seed = export._stateless_seed(seed)
        batch = temperature.shape
        eps = tf.random.stateless_normal([n, *self.latent_shape], seed=seed, dtype=tf.float32)
        if level_temperatures is not None:
            eps = eps * latent_lib.level_temperatures(self, level_temperatures)
        eps = tf.reshape(eps, [n, *([1] * len(batch)), *self.latent_shape])
        t = tf.reshape(tf.constant(temperature), [*batch, *([1] * len(self.latent_shape))])
        return tf.reshape(eps * t, [-1, *self.latent_shape]), batch  # the flow takes one batch axis

    def sample_images(self, n, temperature=1.0, seed=None, level_temperatures=None):
        """`n` samples as uint8 images `[n, *T.shape, H, W, C]` (0..255); see `sample`."""
        return data_lib.to_uint8(self.sample(n, temperature, seed, level_temperatures), self.n_bits)

    @averaging.uses_averaged_weights
    def decode(self, z):
        """Latent `[N, *latent_shape]` -> data (`bijector.forward`); `N = 0` gives an empty batch."""
        return self._decode(z)

    @tf.function(reduce_retracing=True)
    def _decode(self, z):
        empty = tf.zeros((0, *self.event_shape), tf.float32)
        if z.shape[0] == 0:  # convolutions reject an empty batch
            return empty
        if z.shape[0] is None:  # a retraced signature with an unknown batch size
            return tf.cond(tf.shape(z)[0] > 0, lambda: self.distribution.bijector.forward(z), lambda: empty)
        return self.distribution.bijector.forward(z)

    @averaging.uses_averaged_weights
    def encode(self, x):
        """Raw data `[N, *event_shape]` -> latent (`bijector.inverse`), with the fixed noise."""
        if getattr(x, "shape", None) is not None and len(x.shape) and x.shape[0] == 0:
            return tf.zeros((0, *self.latent_shape), tf.float32)
        x_pre = self.preprocess(x, fixed_noise=True)
        return self.distribution.bijector.inverse(x_pre)

"""`FlowModel.compile` with the flow defaults that make training stable by construction, and
what a recompile or a restore needs from it."""
import random

from tfp_glow.numerics import averaging
from tfp_glow.training import persistence
from tfp_glow.numerics import stability
from tfp_glow.training import options

__all__ = ["CompileMixin"]


class CompileMixin:
    """`compile` and its companions of `FlowModel` (a mixin of it)."""

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
            XLA's CPU convolutions are slower than TensorFlow's oneDNN kernels
            (docs/measurements/speed.md), and XLA does not mix with mirrored variables over
            CPU devices (docs/design.md, Speed). The value used
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
        options.refuse_keras_losses(loss=loss, metrics=metrics, loss_weights=loss_weights,
                                    weighted_metrics=weighted_metrics)
        averaging.check_decay(ema_decay)
        options.check_compile_arguments(clip_norm, warmup_steps, max_nonfinite_steps, seed)
        optimizer = options.make_optimizer(optimizer, learning_rate, warmup_steps, lr_schedule, total_steps)
        self.clip_norm = float(clip_norm) if clip_norm else None
        self.skip_nonfinite = bool(skip_nonfinite)
        self.max_nonfinite_steps = None if max_nonfinite_steps is None else int(max_nonfinite_steps)
        self.noise_seed = int(random.randrange(2**31 - 1) if seed is None else seed) % (2**31 - 1)
        super().compile(optimizer=optimizer, jit_compile=options.resolve_jit_compile(jit_compile), **kwargs)
        self._compiled_learning_rate = options.compiled_learning_rate(self.optimizer)
        if not self.optimizer.built:
            # Now, eagerly: creating the slot variables inside the first trace costs seconds.
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)
        averaging.attach(self, ema_decay)

    def reset_learning_rate(self):
        """Give the optimizer the learning rate `compile` set (its warmup and schedule) again.

        A checkpoint restores the float rate of its run's last epoch; a resumed run trains with
        the rate it was compiled with, which is the one it prints and records.
        """
        self.optimizer.learning_rate = self._compiled_learning_rate

    def get_compile_config(self):
        """Keras' compile config, plus the flow's own compile options (`persistence.flow_compile_options`),
        so a `.keras` file reloads compiled as it was saved."""
        config = super().get_compile_config()
        if config:
            config.update(persistence.flow_compile_options(self))
        return config

    def compile_from_config(self, config):
        """Recompile after `keras.models.load_model`, so the optimizer state is restored too."""
        persistence.compile_from_config(self, config)

    def averaged_weights(self):
        """A context manager: its block runs with the weight average in the model's variables,
        and the raw weights come back however it ends (`averaging.averaged_weights`). A no-op
        when EMA is off (`compile(ema_decay=None)`) or before the first step. Do not train or
        save inside it."""
        return averaging.averaged_weights(self)

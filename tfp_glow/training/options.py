"""`FlowModel.compile`'s options: XLA's `"auto"`, the refused Keras losses, the checks, the optimizer."""
import os

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import config as tf_framework_config

from tfp_glow.numerics import stability

__all__ = ["op_determinism_enabled", "resolve_jit_compile", "refuse_keras_losses", "check_compile_arguments",
           "make_optimizer", "compiled_learning_rate"]


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


def refuse_keras_losses(**given):
    """`compile`'s Keras loss/metric arguments have no meaning for a flow: refuse them clearly."""
    given = {k: v for k, v in given.items() if v not in (None, [], {}, ())}
    if given:
        names = ", ".join(f"{k}={v!r}" for k, v in given.items())
        raise ValueError(
            f"FlowModel.compile got {names}, which it cannot use: a flow is trained on its own loss, the "
            f"negative log-likelihood in bits/dim, and has no targets for a Keras loss or metric to compare "
            f"with. Its logs are `loss` (the bits/dim being minimised), `nll` and `bits_per_dim`. Remove "
            f"these arguments; to weight examples, pass sample_weight= or class_weight= to fit/evaluate.")


def check_compile_arguments(clip_norm, warmup_steps, max_nonfinite_steps, seed):
    """Raise a clear `ValueError` for a bad `clip_norm`, `warmup_steps`, `max_nonfinite_steps` or `seed`."""
    if clip_norm is not None and not (isinstance(clip_norm, (int, float)) and clip_norm >= 0):
        raise ValueError(f"clip_norm must be a non-negative float or None; received {clip_norm!r}.")
    if not (isinstance(warmup_steps, (int, np.integer)) and warmup_steps >= 0):
        raise ValueError(f"warmup_steps must be an int >= 0; received {warmup_steps!r}.")
    if max_nonfinite_steps is not None and not (
            isinstance(max_nonfinite_steps, (int, np.integer)) and max_nonfinite_steps >= 1):
        raise ValueError(f"max_nonfinite_steps must be an int >= 1 or None; received {max_nonfinite_steps!r}.")
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int or None; received {seed!r}.")


def make_optimizer(optimizer, learning_rate, warmup_steps, lr_schedule, total_steps):
    """The optimizer `compile` uses: `Adam(learning_rate)` by default (or the one named), its
    rate warmed up and scheduled (`stability.with_schedule`, the one definition of the warmup),
    in a `LossScaleOptimizer` under a `mixed_float16` policy."""
    if optimizer is None:
        optimizer = keras.optimizers.Adam(learning_rate)
    elif isinstance(optimizer, str):
        optimizer = keras.optimizers.get({"class_name": optimizer, "config": {"learning_rate": learning_rate}})
    optimizer = stability.with_schedule(optimizer, int(warmup_steps), lr_schedule, total_steps)
    if keras.mixed_precision.dtype_policy().name == "mixed_float16" and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def compiled_learning_rate(optimizer):
    """The learning rate an optimizer was compiled with: its schedule, or its float rate."""
    inner = optimizer.inner_optimizer if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else optimizer
    lr = inner._learning_rate  # a float variable, or the schedule as given
    if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        return lr
    return float(keras.ops.convert_to_numpy(lr))

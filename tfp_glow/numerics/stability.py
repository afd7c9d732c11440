"""Training stability: learning-rate warmup, gradient clipping and non-finite step skipping.

The pieces `FlowModel.compile` switches on by default (docs/design.md, Training stability):

* `LinearWarmup`: openai/glow's linear warmup, `lr(t) = lr * min(1, (t + 1) / warmup_steps)`;
* `CosineDecayAfterWarmup`: an optional cosine decay of the steps after the warmup
  (`learning_rate_schedule`, `with_schedule`);
* `clip_and_check`: global-norm clipping, and one finiteness test of the whole update;
* `apply_if_finite`: applies an update only when it is finite on every replica, inside the
  compiled step (XLA- and `tf.distribute`-compatible), so a NaN never reaches the weights.
"""
import math
import numbers

import keras
import tensorflow as tf

#: Defaults of `FlowModel.compile`, chosen on digits28 and photos32 (see the README, Training).
DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_WARMUP_STEPS = 200
DEFAULT_CLIP_NORM = 50.0
DEFAULT_MAX_NONFINITE_STEPS = 20
#: `FlowModel.compile(lr_schedule=...)`: the learning rate after the warmup.
LR_SCHEDULES = ("constant", "cosine")


@keras.saving.register_keras_serializable(package="tfp_glow")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """`lr(t) = base(t) * min(1, (t + 1) / warmup_steps)`: openai/glow's linear warmup.

    Args:
      base: the learning rate after warmup: a float or a Keras `LearningRateSchedule`.
      warmup_steps: Python int >= 1, the number of optimizer steps to reach `base`.

    References:
      Kingma & Dhariwal, "Glow", NeurIPS 2018 (openai/glow `train.py`, `epochs_warmup`).
    """

    def __init__(self, base, warmup_steps):
        if isinstance(base, dict):
            base = keras.optimizers.schedules.deserialize(base)
        if not (isinstance(warmup_steps, int) and warmup_steps >= 1):
            raise ValueError(f"warmup_steps must be an int >= 1; received {warmup_steps!r}.")
        if not isinstance(base, keras.optimizers.schedules.LearningRateSchedule):
            if not (isinstance(base, (int, float)) and base > 0):
                raise ValueError(f"the learning rate must be a positive float or a schedule; received {base!r}.")
            base = float(base)
        self.base = base
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        base = self.base(step) if callable(self.base) else tf.constant(self.base, tf.float32)
        return tf.cast(base, tf.float32) * tf.minimum(1.0, (step + 1.0) / float(self.warmup_steps))

    def get_config(self):
        base = self.base
        if isinstance(base, keras.optimizers.schedules.LearningRateSchedule):
            base = keras.optimizers.schedules.serialize(base)
        return {"base": base, "warmup_steps": self.warmup_steps}


@keras.saving.register_keras_serializable(package="tfp_glow")
class CosineDecayAfterWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """`lr(t) = lr * (alpha + (1 - alpha) * (1 + cos(pi * s)) / 2)`, `s = clip((t - warmup_steps) / decay_steps, 0, 1)`.

    Keras' `CosineDecay(lr, decay_steps, alpha)` started at step `warmup_steps` instead of 0:
    constant `lr` during the warmup (which `LinearWarmup` around it ramps up), then a half
    cosine to `alpha * lr` at step `warmup_steps + decay_steps`, and `alpha * lr` after it.

    Args:
      learning_rate: Python float > 0, the rate at the end of the warmup.
      decay_steps: Python int >= 1, the steps of the decay (a run's total steps minus the warmup).
      warmup_steps: Python int >= 0, the steps before the decay starts.
      alpha: Python float in [0, 1], the final rate as a fraction of `learning_rate`.

    References:
      Loshchilov & Hutter, "SGDR: Stochastic gradient descent with warm restarts", ICLR 2017.
    """

    def __init__(self, learning_rate, decay_steps, warmup_steps=0, alpha=0.0):
        if isinstance(learning_rate, bool) or not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive float; received {learning_rate!r}.")
        if isinstance(decay_steps, bool) or not (isinstance(decay_steps, int) and decay_steps >= 1):
            raise ValueError(f"decay_steps must be an int >= 1; received {decay_steps!r}.")
        if isinstance(warmup_steps, bool) or not (isinstance(warmup_steps, int) and warmup_steps >= 0):
            raise ValueError(f"warmup_steps must be an int >= 0; received {warmup_steps!r}.")
        if not (isinstance(alpha, (int, float)) and 0 <= alpha <= 1):
            raise ValueError(f"alpha must be a float in [0, 1]; received {alpha!r}.")
        self.learning_rate = float(learning_rate)
        self.decay_steps = int(decay_steps)
        self.warmup_steps = int(warmup_steps)
        self.alpha = float(alpha)

    def __call__(self, step):
        s = (tf.cast(step, tf.float32) - float(self.warmup_steps)) / float(self.decay_steps)
        cosine = 0.5 * (1.0 + tf.cos(math.pi * tf.clip_by_value(s, 0.0, 1.0)))
        return self.learning_rate * (self.alpha + (1.0 - self.alpha) * cosine)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "decay_steps": self.decay_steps,
                "warmup_steps": self.warmup_steps, "alpha": self.alpha}


def check_lr_schedule(lr_schedule, warmup_steps, total_steps):
    """Raise a `ValueError` unless `lr_schedule` is one of `LR_SCHEDULES` and `total_steps`
    fits it: `None` for `"constant"`, an int above `warmup_steps` for `"cosine"`."""
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}; received {lr_schedule!r}.")
    if lr_schedule == "constant":
        if total_steps is not None:
            raise ValueError(f"total_steps applies to lr_schedule='cosine' only; received total_steps={total_steps!r} "
                             f"with lr_schedule='constant'.")
        return
    if isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Integral) or total_steps <= warmup_steps:
        raise ValueError(f"lr_schedule='cosine' needs total_steps, the run's number of optimizer steps (epochs x "
                         f"steps per epoch), an int above warmup_steps={warmup_steps}; received {total_steps!r}.")


def learning_rate_schedule(learning_rate, warmup_steps, lr_schedule="constant", total_steps=None):
    """The learning rate `FlowModel.compile` gives a float-rate optimizer: `learning_rate` itself,
    `LinearWarmup` around it, and for `"cosine"` a `CosineDecayAfterWarmup` to 0 at `total_steps`.

    Args:
      learning_rate: Python float > 0.
      warmup_steps: Python int >= 0 (0: no warmup).
      lr_schedule: `"constant"` or `"cosine"`.
      total_steps: Python int, the run's optimizer steps (`"cosine"` only).
    """
    check_lr_schedule(lr_schedule, warmup_steps, total_steps)
    rate = learning_rate
    if lr_schedule == "cosine":
        rate = CosineDecayAfterWarmup(learning_rate, int(total_steps) - int(warmup_steps), int(warmup_steps))
    return LinearWarmup(rate, int(warmup_steps)) if warmup_steps else rate


def with_warmup(optimizer, warmup_steps):
    """A copy of an unbuilt Keras `optimizer` whose learning rate warms up linearly
    (`with_schedule(optimizer, warmup_steps)`).

    Args:
      optimizer: a Keras 3 optimizer (not yet built), or a `LossScaleOptimizer` around one.
      warmup_steps: Python int; 0 returns `optimizer` unchanged.
    """
    return with_schedule(optimizer, warmup_steps)


def with_schedule(optimizer, warmup_steps, lr_schedule="constant", total_steps=None):
    """A copy of an unbuilt Keras `optimizer` with its learning rate warmed up and scheduled.

    A float rate becomes `learning_rate_schedule(rate, warmup_steps, lr_schedule, total_steps)`;
    a schedule is wrapped in `LinearWarmup` (`"constant"` only). An optimizer whose rate is a
    `LinearWarmup` already (a reloaded one) is returned as it is.

    Args:
      optimizer: a Keras 3 optimizer (not yet built), or a `LossScaleOptimizer` around one.
      warmup_steps: Python int >= 0.
      lr_schedule: `"constant"` or `"cosine"` (`LR_SCHEDULES`).
      total_steps: Python int, the run's optimizer steps (`"cosine"` only).

    Raises:
      ValueError: a built optimizer, a bad schedule or `total_steps`, `"cosine"` on an
        optimizer whose rate is a schedule already.
    """
    check_lr_schedule(lr_schedule, warmup_steps, total_steps)
    if not warmup_steps and lr_schedule == "constant":
        return optimizer
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        inner = with_schedule(optimizer.inner_optimizer, warmup_steps, lr_schedule, total_steps)
        return keras.optimizers.LossScaleOptimizer(inner, initial_scale=float(optimizer.initial_scale),
                                                   dynamic_growth_steps=optimizer.dynamic_growth_steps)
    if optimizer.built:
        raise ValueError("warmup_steps needs an optimizer that is not built yet; pass a fresh one, "
                         "or warmup_steps=0 to keep this optimizer's learning rate as it is.")
    lr = optimizer._learning_rate  # a float variable, or the schedule as given
    if isinstance(lr, LinearWarmup) and lr_schedule == "constant":
        return optimizer
    if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        if lr_schedule != "constant":
            raise ValueError(f"lr_schedule={lr_schedule!r} schedules a float learning rate; this optimizer has the "
                             f"schedule {type(lr).__name__} already: pass lr_schedule='constant' to keep it.")
        rate = LinearWarmup(lr, int(warmup_steps))
    else:
        rate = learning_rate_schedule(float(keras.ops.convert_to_numpy(lr)), warmup_steps, lr_schedule, total_steps)
    config = optimizer.get_config()
    config["learning_rate"] = rate
    return type(optimizer).from_config(config)


def clip_and_check(grads, loss, clip_norm):
    """`(clipped grads, global norm before clipping, finite)` for one update.

    One reduction serves both purposes: the global norm is non-finite exactly when some
    gradient is (or overflows its square), so `finite` also covers the loss.

    Args:
      grads: list of gradient tensors (`None` entries allowed).
      loss: scalar loss of the step.
      clip_norm: Python float, or `None` for no clipping.
    """
    present = [g for g in grads if g is not None]
    norm = tf.linalg.global_norm(present)
    finite = tf.logical_and(tf.math.is_finite(norm), tf.reduce_all(tf.math.is_finite(loss)))
    if clip_norm:
        # clip_by_global_norm with a given norm: no second reduction
        factor = tf.minimum(1.0, clip_norm / tf.maximum(norm, 1e-30))
        grads = [None if g is None else g * tf.cast(factor, g.dtype) for g in grads]
    return grads, norm, finite


def agree_across_replicas(finite):
    """`finite` on every replica (logical AND), so all replicas take the same branch."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return finite
    bad = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(tf.logical_not(finite), tf.float32))
    return tf.equal(bad, 0.0)


def apply_if_finite(optimizer, grads, variables, finite, on_apply=None):
    """`optimizer.apply(grads, variables)` only where `finite` (a scalar bool), in the graph.

    `on_apply` (a callable, e.g. `averaging.update`) runs after the update in the same branch,
    so only with an applied step; under `MirroredStrategy` it runs in cross-replica context.
    The optimizer's step counter (and so the warmup) does not advance on a skipped step. Call
    `agree_across_replicas` first so that every replica takes the same branch. Keras applies
    updates through `merge_call` under `MirroredStrategy`, which a `tf.cond` in replica
    context cannot hold, so there the branch is taken in cross-replica context, as Keras'
    `LossScaleOptimizer` does.
    """
    skip = lambda: tf.constant(False)

    if (not tf.distribute.has_strategy()
            or tf.__internal__.distribute.strategy_supports_no_merge_call()):
        def apply():
            optimizer.apply(grads, variables)
            if on_apply is not None:
                on_apply()
            return tf.constant(True)

        return tf.cond(finite, apply, skip)

    def cross_replica(distribution, grads, finite):
        # every replica holds the same (agreed) flag; take the first
        finite = distribution.experimental_local_results(finite)[0]

        def apply_all():
            distribution.extended.call_for_each_replica(lambda g: optimizer.apply(g, variables), args=(grads,))
            if on_apply is not None:
                on_apply()
            return tf.constant(True)

        return tf.cond(finite, apply_all, skip)

    return tf.distribute.get_replica_context().merge_call(cross_replica, args=(grads, finite))

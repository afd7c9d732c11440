"""Training stability: learning-rate warmup, gradient clipping and non-finite step skipping.

The pieces `FlowModel.compile` switches on by default (DESIGN.md, Training stability):

* `LinearWarmup`: openai/glow's linear warmup, `lr(t) = lr * min(1, (t + 1) / warmup_steps)`;
* `clip_and_check`: global-norm clipping, and one finiteness test of the whole update;
* `apply_if_finite`: applies an update only when it is finite on every replica, inside the
  compiled step (XLA- and `tf.distribute`-compatible), so a NaN never reaches the weights.
"""
import keras
import tensorflow as tf

#: Defaults of `FlowModel.compile`, chosen on digits28 and photos32 (see the README, Training).
DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_WARMUP_STEPS = 200
DEFAULT_CLIP_NORM = 50.0
DEFAULT_MAX_NONFINITE_STEPS = 20


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


def with_warmup(optimizer, warmup_steps):
    """A copy of an unbuilt Keras `optimizer` whose learning rate warms up linearly.

    Args:
      optimizer: a Keras 3 optimizer (not yet built), or a `LossScaleOptimizer` around one.
      warmup_steps: Python int; 0 returns `optimizer` unchanged.
    """
    if not warmup_steps:
        return optimizer
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        inner = with_warmup(optimizer.inner_optimizer, warmup_steps)
        return keras.optimizers.LossScaleOptimizer(inner, initial_scale=float(optimizer.initial_scale),
                                                   dynamic_growth_steps=optimizer.dynamic_growth_steps)
    if optimizer.built:
        raise ValueError("warmup_steps needs an optimizer that is not built yet; pass a fresh one, "
                         "or warmup_steps=0 to keep this optimizer's learning rate as it is.")
    lr = optimizer._learning_rate  # a float variable, or the schedule as given
    if isinstance(lr, LinearWarmup):
        return optimizer
    if not isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        lr = float(keras.ops.convert_to_numpy(lr))
    config = optimizer.get_config()
    config["learning_rate"] = LinearWarmup(lr, int(warmup_steps))
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


def apply_if_finite(optimizer, grads, variables, finite):
    """`optimizer.apply(grads, variables)` only where `finite` (a scalar bool), in the graph.

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
            return tf.constant(True)

        return tf.cond(finite, apply, skip)

    def cross_replica(distribution, grads, finite):
        # every replica holds the same (agreed) flag; take the first
        finite = distribution.experimental_local_results(finite)[0]

        def apply_all():
            distribution.extended.call_for_each_replica(lambda g: optimizer.apply(g, variables), args=(grads,))
            return tf.constant(True)

        return tf.cond(finite, apply_all, skip)

    return tf.distribute.get_replica_context().merge_call(cross_replica, args=(grads, finite))

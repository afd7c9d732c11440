"""An exponential moving average (Polyak averaging) of a model's weights, for evaluation and sampling.

    d_t   = min(decay, (1 + t) / (10 + t))
    avg_t = d_t * avg_{t-1} + (1 - d_t) * w_t

with `w_t` a trainable variable after the `t`-th applied optimizer step (`t` =
`optimizer.iterations` after the step) and `avg_1 = w_1`: the first update copies the weights,
so the average starts from the weights after ActNorm's data-dependent initialisation and the
first step, never from values the model held before. The decay warms up (`d_t` is 0.18 at
`t = 1`, 0.5 at `t = 8`, 0.9 at `t = 80`, `decay` from `t = (10 decay - 1) / (1 - decay)` on), so
a short run is not dominated by its first weights.

`FlowModel.compile(ema_decay=...)` switches it on (`attach`). The update runs inside the
compiled train step, in the branch that applies the step (`stability.apply_if_finite`), so a
skipped non-finite step leaves the averages as they were; it is one assignment per variable,
XLA- and `tf.distribute`-compatible. `averaged_weights(model)` swaps the averages into the
model's variables and back; `evaluate`, `predict`, `sample`, `encode`, `decode` and the
SavedModel export run inside it.

Why not Keras' own `Adam(use_ema=True, ema_momentum=decay)`: its momentum is fixed from the
first step, so after `t` steps the barely trained weights of step 1 still weigh `decay^(t-1)`
(0.37 at `t = 1000` for 0.999); and `fit` overwrites the model's variables with the average at
the end of every `fit` (`finalize_variable_values`), so a resumed or continued run trains on
from the average, not from where the optimizer was.

The averages are the non-trainable variables of one Keras layer, `WeightAverage`, held by the
model as `model.weight_average`: `save_weights`, `.keras` files and `tf.train.Checkpoint(model=)`
hold them. A model without an average writes exactly the files it wrote before; a weights file
without averages loads into a model with one (the next update copies the weights again).

References:
  Polyak & Juditsky, "Acceleration of stochastic approximation by averaging", SIAM J. Control
    Optim. 1992.
  Ho et al., "Flow++: Improving flow-based generative models with variational dequantization
    and architecture design", ICML 2019 (an EMA of the weights for evaluation).
  Salimans et al., "PixelCNN++", ICLR 2017 (Polyak averaging of the weights for evaluation).
"""
import contextlib
import functools
import math
import numbers

import keras
import tensorflow as tf

__all__ = ["WeightAverage", "WEIGHTS_PATH", "check_decay", "attach", "update", "averaged_weights",
           "uses_averaged_weights", "average_variables"]

#: Where Keras writes a model's `WeightAverage` in a `.weights.h5` file (the layer's class name).
WEIGHTS_PATH = "layers/weight_average"


def check_decay(decay):
    """`decay` as a float in `(0, 1)`, or `None` for no average (`None` or 0).

    Raises:
      ValueError: anything else (a bool, a string, a number outside `[0, 1)`, NaN).
    """
    if decay is None or (isinstance(decay, numbers.Real) and not isinstance(decay, bool) and decay == 0):
        return None
    if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not (
            math.isfinite(decay) and 0 < decay < 1):
        raise ValueError(f"ema_decay must be a float in (0, 1), e.g. 0.999, or None / 0 for no weight average; "
                         f"received {decay!r}.")
    return float(decay)


class WeightAverage(keras.layers.Layer):
    """`avg <- d_t * avg + (1 - d_t) * w` for every variable `w`, `d_t = min(decay, (1 + t) / (10 + t))`.

    The first update copies (`d = 0` until `started`), whatever `t` is: a fresh run, a model
    whose weights came from a file without averages, a run resumed from weights alone.

    Args:
      variables: the variables to average (a model's `trainable_variables`), each of any
        shape `[...]`; their averages have the same shapes and dtypes.
      decay: Python float in `(0, 1)`, the largest `d_t`.
      name: Keras name.

    Attributes:
      averages: one non-trainable variable per averaged variable, in the same order.
      started: float32 `[]`, 1 once an update has run (0: the averages hold nothing yet).

    References:
      Polyak & Juditsky 1992; Ho et al., "Flow++", ICML 2019; Salimans et al., "PixelCNN++",
      ICLR 2017.
    """

    def __init__(self, variables, decay, name="weight_average", **kwargs):
        super().__init__(name=name, trainable=False, **kwargs)
        decay = check_decay(decay)
        if decay is None:
            raise ValueError("WeightAverage needs a decay in (0, 1).")
        self.decay = decay
        variables = tuple(variables)
        averages = []
        for i, v in enumerate(variables):
            # "only_first_replica": an assignment in replica context takes replica 0's value,
            # which every replica holds anyway (the weights are mirrored)
            average = self.add_weight(shape=tuple(v.shape), dtype=v.dtype, initializer="zeros", trainable=False,
                                      name=f"average_{i}", aggregation="only_first_replica")
            # one attribute each: tf.train.Checkpoint does not look into Keras' tracked lists
            setattr(self, f"average_{i}", average)
            averages.append(average)
        self.started = self.add_weight(shape=(), dtype="float32", initializer="zeros", trainable=False,
                                       name="started", aggregation="only_first_replica")
        # Set around Keras' and TensorFlow's tracking: the model owns the averaged variables
        # (tracked here they would be saved twice), and the averages are tracked already.
        object.__setattr__(self, "targets", variables)
        object.__setattr__(self, "averages", tuple(averages))
        object.__setattr__(self, "_swapped", False)

    def update(self, iterations, applied=None):
        """One averaging step, in the graph, after the optimizer's update.

        Args:
          iterations: int `[]`, the optimizer's step count after the update (`t`).
          applied: optional bool `[]`: `False` leaves every average as it is (`d = 1`), for an
            update the optimizer may have skipped itself (`LossScaleOptimizer`).
        """
        t = tf.cast(iterations, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + t) / (10.0 + t))
        decay = tf.where(self.started > 0.0, decay, 0.0)
        if applied is not None:
            decay = tf.where(applied, decay, 1.0)
        for average, weight in zip(self.averages, self.targets):
            d = tf.cast(decay, average.dtype)
            average.assign(d * average + (1.0 - d) * weight)
        self.started.assign(1.0 if applied is None else tf.where(applied, 1.0, self.started.value))

    def swap(self):
        """Exchanges the averages and the variables' values, exactly (a second call undoes it)."""
        for average, weight in zip(self.averages, self.targets):
            raw = tf.identity(weight.value)
            weight.assign(average)
            average.assign(raw)

    @contextlib.contextmanager
    def swapped_in(self):
        """Runs the block with the averages in the variables and the variables' values in the
        averages, and swaps back however it ends. A no-op inside another `swapped_in`, inside a
        `tf.function`, and before the first update (the average of no steps is the weights)."""
        if self._swapped or not tf.executing_eagerly() or float(self.started.numpy()) <= 0.0:
            yield
            return
        self.swap()
        object.__setattr__(self, "_swapped", True)
        try:
            yield
        finally:
            object.__setattr__(self, "_swapped", False)
            self.swap()

    def load_own_variables(self, store):
        """Keras' loading; a file written without averages leaves them to restart (`started = 0`)."""
        if not len(store.keys()):
            self.started.assign(0.0)
            return
        super().load_own_variables(store)


def attach(model, decay):
    """Sets `model.ema_decay` and, for a decay, gives the model its `WeightAverage`.

    `model.weight_average` averages `model.trainable_variables`; an existing one over the same
    variables is kept (with its values), so a recompile, `load_run` and a restore keep it.

    Args:
      model: a Keras model (a `FlowModel`).
      decay: a float in `(0, 1)`, or `None` / 0 (off: no update, no swap; an existing average
        stays in the model and its files).

    Returns:
      The `WeightAverage`, or `None` when off.

    Raises:
      ValueError: a bad decay, or trainable variables that changed since the average was made.
    """
    decay = check_decay(decay)
    model.ema_decay = decay
    current = getattr(model, "weight_average", None)
    if decay is None:
        return None
    variables = model.trainable_variables
    if current is not None:
        if [id(v) for v in current.targets] != [id(v) for v in variables]:
            raise ValueError("the model's trainable variables changed since its weight average was created "
                             "(a layer frozen or unfrozen?); build a new model to average other variables.")
        current.decay = decay
        return current
    with model.distribute_strategy.scope():
        model.weight_average = WeightAverage(variables, decay)
    return model.weight_average


def _active(model):
    average = getattr(model, "weight_average", None)
    return average if average is not None and getattr(model, "ema_decay", None) else None


def update(model, applied=None):
    """`model.weight_average.update(optimizer.iterations, applied)` when the average is on (train step)."""
    average = _active(model)
    if average is not None:
        average.update(model.optimizer.iterations, applied)


def averaged_weights(model):
    """A context manager running its block with the model's averaged weights (`WeightAverage.swapped_in`);
    a no-op when the model has no average or it is off. Do not train or save inside it."""
    average = _active(model)
    return contextlib.nullcontext() if average is None else average.swapped_in()


def uses_averaged_weights(method):
    """Decorates a model method to run inside `averaged_weights(model)`."""
    @functools.wraps(method)
    def with_averages(model, *args, **kwargs):
        with averaged_weights(model):
            return method(model, *args, **kwargs)

    return with_averages


def average_variables(model):
    """The model's averaging variables (averages and `started`; none without an average)."""
    average = getattr(model, "weight_average", None)
    return [] if average is None else list(average.weights)

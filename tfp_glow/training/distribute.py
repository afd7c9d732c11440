"""`tf.distribute` helpers: pick a strategy by name, and make ActNorm identical on every replica.

Multi-worker training runs on TensorFlow's own engine, `tf.distribute.MultiWorkerMirroredStrategy`
(workers found through the `TF_CONFIG` environment variable), not a home-made scheme:

```python
strategy = get_strategy("multiworker")          # or "mirrored", or "none"
with strategy.scope():
    model = FlowModel(config, n_bits=5)
    initialize_actnorm_identically(model, global_init_batch(x_train))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))   # XLA off under multi-replica CPU
model.fit(dataset, ...)                          # the same global batches on every worker
```

ActNorm's data-dependent initialisation must give identical values on every replica (TFP's own
`tfb.Glow` initialises only on replica 0). `initialize_actnorm_identically` does it in three
steps, all in cross-replica context (outside `strategy.run`):

1. every worker initialises from the *same deterministic global batch* (`global_init_batch`: a
   fixed-seed subset of the un-sharded data, not each worker's shard), so each worker computes
   the same values, and a cross-replica `assign` writes them to all of its local replicas;
2. the values of replica 0 (on the chief) are broadcast to every replica with one all-reduce,
   so the result is identical even if two workers' arithmetic differed in the last bit;
3. it verifies, with another all-reduce, that the largest difference between any replica's
   values and replica 0's is exactly zero, and returns that figure.
"""
import numpy as np
import tensorflow as tf

from tfp_glow.training import callbacks
from tfp_glow.bijectors.actnorm import ActNorm

STRATEGIES = ("none", "mirrored", "multiworker")

__all__ = ["STRATEGIES", "get_strategy", "is_chief", "global_init_batch", "actnorm_variables",
           "broadcast_from_first_replica", "max_replica_difference", "initialize_actnorm_identically",
           "in_multi_worker_mode", "multi_worker_safe_logs"]


def get_strategy(name="none", devices=None):
    """A `tf.distribute.Strategy` by name.

    Args:
      name: `none` (the default strategy: this process, no replication), `mirrored`
        (`MirroredStrategy` over this machine's devices, or `devices`) or `multiworker`
        (`MultiWorkerMirroredStrategy`; the cluster comes from `TF_CONFIG`, and without it the
        process is a cluster of one).
      devices: optional device list for `mirrored`, e.g. `["/cpu:0", "/cpu:1"]`.

    Raises:
      ValueError: an unknown name (the message lists the choices), or `devices` with another
        strategy than `mirrored`.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}.")
    if devices is not None and name != "mirrored":
        raise ValueError(f"devices= applies to the 'mirrored' strategy only; received strategy {name!r}.")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy=None):
    """Whether this process writes files (checkpoints, samples, logs): `tfp_glow.training.callbacks.is_chief`.

    Without a cluster every process is the chief; in a cluster,
    the `chief` task, or worker 0 of a cluster without one.

    Args:
      strategy: a `tf.distribute.Strategy`; pass the model's (`model.distribute_strategy`) from
        code that runs outside `strategy.scope()`, such as callbacks.
    """
    return callbacks.is_chief(strategy)


def global_init_batch(data, n=256, seed=0, batched=None):
    """A deterministic batch of the *global* data, the same on every worker.

    Args:
      data: an array `[N, ...]`, or an un-sharded, un-shuffled (or fixed-seed) `tf.data.Dataset`
        of examples or of batches (features first if elements are tuples). Never a worker's
        shard.
      n: number of examples.
      seed: for arrays, the seed of the subset (sorted indices of a fixed permutation).
      batched: whether the dataset yields batches; default: inferred from an unknown leading
        dimension of its element spec (`batch(..., drop_remainder=True)` needs `True`).

    Returns:
      A numpy array `[min(n, N), ...]`.
    """
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        spec = spec[0] if isinstance(spec, (tuple, list)) else spec
        if batched is None:
            batched = spec.shape.rank is not None and spec.shape.rank >= 1 and spec.shape[0] is None
        rows, count = [], 0
        for item in data:
            item = np.asarray(item[0] if isinstance(item, (tuple, list)) else item)
            item = item if batched else item[None]
            rows.append(item)
            count += len(item)
            if count >= n:
                break
        if not rows:
            raise ValueError("The dataset is empty: no batch to initialise ActNorm from.")
        return np.concatenate(rows)[:n]
    data = np.asarray(data)
    if len(data) == 0:
        raise ValueError("The data is empty: no batch to initialise ActNorm from.")
    if len(data) <= n:
        return data
    index = np.sort(np.random.default_rng(seed).permutation(len(data))[:n])
    return data[index]


def actnorm_variables(model):
    """The `tf.Variable`s of every ActNorm of a `FlowModel` (log-scale, bias, initialised flag)."""
    out = []
    for m in model.distribution.bijector.submodules:
        if isinstance(m, ActNorm):
            out.extend(w.value for w in m.parameters_layer.weights)  # Keras 3 weight -> tf.Variable
    return out


def _replica_values(strategy, fn):
    """Run `fn` in replica context (as a tf.function) and return the first local result."""
    result = strategy.run(tf.function(fn))
    return tf.nest.map_structure(lambda r: strategy.experimental_local_results(r)[0], result)


def broadcast_from_first_replica(variables, strategy=None):
    """Give every replica (on every worker) the values replica 0 holds, exactly.

    One all-reduce of `value` on replica 0 and zeros elsewhere (a sum with zeros is exact),
    then a cross-replica `assign` on each worker. Call it outside `strategy.run`.
    """
    strategy = strategy or tf.distribute.get_strategy()
    variables = list(variables)
    if strategy.num_replicas_in_sync == 1 or not variables:
        return

    def fn():
        ctx = tf.distribute.get_replica_context()
        first = tf.equal(ctx.replica_id_in_sync_group, 0)
        vals = [tf.identity(v) for v in variables]
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, [tf.where(first, x, tf.zeros_like(x)) for x in vals])

    values = _replica_values(strategy, fn)
    for v, x in zip(variables, values):
        v.assign(x)


def max_replica_difference(variables, strategy=None):
    """Largest `|value - value on replica 0|` over all variables and all replicas (a float).

    Exactly 0.0 when every replica on every worker holds the same values. Call it outside
    `strategy.run`; every worker must call it (it runs all-reduces).
    """
    strategy = strategy or tf.distribute.get_strategy()
    variables = list(variables)
    if not variables:
        return 0.0

    def fn():
        ctx = tf.distribute.get_replica_context()
        first = tf.equal(ctx.replica_id_in_sync_group, 0)
        diffs = []
        for v in variables:
            x = tf.cast(tf.identity(v), tf.float32)
            ref = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.where(first, x, tf.zeros_like(x)))
            diffs.append(tf.reduce_max(tf.abs(x - ref)))
        # differences are >= 0, so their sum over replicas is 0 only if every one is 0
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_max(tf.stack(diffs)))

    return float(_replica_values(strategy, fn))


def initialize_actnorm_identically(model, batch, strategy=None, broadcast=True, force=False):
    """ActNorm data-dependent initialisation with identical values on every replica and worker.

    Every worker must call this with the same global batch (`global_init_batch`), inside
    `strategy.scope()` or after it, in cross-replica context.

    Args:
      model: a `FlowModel` built under `strategy.scope()`.
      batch: the same raw global batch `[N, *event_shape]` on every worker.
      strategy: defaults to the current strategy.
      broadcast: also copy replica 0's values to every replica (exact equality even if the
        workers' arithmetic differed).
      force: re-initialise layers already initialised (e.g. after a restore, normally not).

    Returns:
      The largest difference between any replica's actnorm values and replica 0's (0.0).

    Raises:
      RuntimeError: called inside `strategy.run` (replica context), or the values differ.
    """
    strategy = strategy or tf.distribute.get_strategy()
    if not tf.distribute.in_cross_replica_context() and strategy.num_replicas_in_sync > 1:
        raise RuntimeError("initialize_actnorm_identically must run in cross-replica context, "
                           "outside strategy.run.")
    model.initialize(batch, force=force)
    variables = actnorm_variables(model)
    if broadcast:
        broadcast_from_first_replica(variables, strategy)
    diff = max_replica_difference(variables, strategy) if strategy.num_replicas_in_sync > 1 else 0.0
    if diff != 0.0:
        raise RuntimeError(f"ActNorm values differ across replicas after initialisation (max |diff| {diff}).")
    return diff


def in_multi_worker_mode(strategy=None):
    """True under a `MultiWorkerMirroredStrategy` whose cluster has more than one worker."""
    strategy = strategy or tf.distribute.get_strategy()
    extended = getattr(strategy, "extended", None)
    return bool(isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
                and getattr(extended, "_in_multi_worker_mode", lambda: False)())


def multi_worker_safe_logs(logs, strategy=None):
    """Make a `train_step`/`test_step` result reducible by Keras 3 across workers.

    Under a multi-worker `MultiWorkerMirroredStrategy`, Keras 3 reduces the step's outputs
    with `strategy.reduce("MEAN", value, axis=0)`, which fails on the scalar metric values a
    step returns ("Invalid reduction dimension 0 for input with 0 dimensions",
    tensorflow/tensorflow#72388). Giving each value a leading axis of length 1 in that mode
    (and only then) fixes it: the mean over axis 0 of the gathered values is a scalar again,
    so the logs `fit` prints and returns are unchanged. Idempotent.

    Args:
      logs: dict of scalar tensors, as returned by `train_step` / `test_step`.
      strategy: defaults to the current strategy.
    """
    if not in_multi_worker_mode(strategy):
        return logs
    return {k: tf.reshape(v, [1]) for k, v in logs.items()}

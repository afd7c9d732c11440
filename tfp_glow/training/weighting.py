"""The figures of a step: `nll` and bits/dim from `log p`, and their (weighted) means.

With data dequantized to `[-0.5, 0.5)` at `n_bits` bits, `nll = -log p(x) + D log(2^n_bits)`
nats per example (the discrete-data bound; `+ log q(u | x)` under variational dequantization)
and `bits_per_dim = nll / (D ln 2)`; for raw float vectors `nll = -log p(x)`. A mean over a
batch under `sample_weight` is `sum_i w_i v_i / sum_i w_i`; all-zero weights give 0, not NaN.
"""
import math

import tensorflow as tf

__all__ = ["scores", "per_example", "weighted_mean", "training_loss", "weights_across_replicas",
           "global_weighted_means"]


def scores(log_p, log_q, num_dims, n_bits):
    """`(log p, nll, bits/dim)` per example (see the module docstring).

    Args:
      log_p: float `[N]`, `log p(x)` of the dequantized data.
      log_q: float `[N]`, `log q(u | x)` of variational dequantization, or `None`.
      num_dims: Python int `D`, the dimensions of an example.
      n_bits: Python int, the bit depth of image data, or `None` for float vectors.
    """
    log_p = tf.cast(log_p, tf.float32)
    nll = -log_p
    if n_bits is not None:
        nll = nll + num_dims * n_bits * math.log(2.0)
    if log_q is not None:
        nll = nll + log_q
    return log_p, nll, nll / (num_dims * math.log(2.0))


def per_example(sample_weight, bpd):
    """Keras' `sample_weight` (`[N]` or `[N, 1]`) as float32 `[N]`, the shape of `bpd`."""
    return tf.reshape(tf.cast(sample_weight, tf.float32), tf.shape(bpd))


def weighted_mean(bpd, sample_weight=None):
    """`(mean, w)`: this replica's (weighted) mean of `bpd [N]`, and the weights `[N]` (`None`
    without them)."""
    if sample_weight is None:
        return tf.reduce_mean(bpd), None
    w = per_example(sample_weight, bpd)
    return tf.math.divide_no_nan(tf.reduce_sum(w * bpd), tf.reduce_sum(w)), w


def _replicas():
    ctx = tf.distribute.get_replica_context()
    return ctx, (ctx.num_replicas_in_sync if ctx is not None else 1)


def training_loss(bpd, sample_weight=None):
    """The train step's loss: `(loss, scaled, w, replicas)`.

    `loss` is this replica's (weighted) mean for the logs; `scaled` its share of the global
    (weighted) mean, which its gradients come from (Keras sums the replicas'): `loss / replicas`
    without weights, `sum_i w_i bpd_i / sum_global w` with them; `w` the weights `[N]` or `None`.
    """
    ctx, replicas = _replicas()
    if sample_weight is None:
        loss = tf.reduce_mean(bpd)
        return loss, loss / replicas, None, replicas
    w = per_example(sample_weight, bpd)
    local_sum, local_w = tf.reduce_sum(w * bpd), tf.reduce_sum(w)
    global_w = ctx.all_reduce(tf.distribute.ReduceOp.SUM, local_w) if replicas > 1 else local_w
    return tf.math.divide_no_nan(local_sum, local_w), tf.math.divide_no_nan(local_sum, global_w), w, replicas


def weights_across_replicas(sample_weight):
    """True for a weighted step under several replicas (see `global_weighted_means`)."""
    ctx, replicas = _replicas()
    return sample_weight is not None and replicas > 1


def global_weighted_means(sample_weight, *values):
    """Under several replicas with `sample_weight`: the global weighted means of `values`
    (`[N]` each) and the global weight, identical on every replica; else `None`.

    `fit` logs a metric as the mean of the replicas' step results, which is the global mean
    only when every replica holds the same weight; with uneven sample weights each replica
    logs the global figure instead (one all-reduce a value, only on this path).
    """
    if not weights_across_replicas(sample_weight):
        return None
    ctx = tf.distribute.get_replica_context()
    total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(sample_weight))
    means = [tf.math.divide_no_nan(ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(sample_weight * v)), total)
             for v in values]
    return (*means, total)

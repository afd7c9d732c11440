"""`FlowModel`'s data side: checks, bit reduction and dequantization noise (fresh or fixed).

Images are reduced to `n_bits` and dequantized, `x = (x_int + u) / 2^n_bits - 0.5`: with fresh
`u ~ U[0, 1)` drawn inside the train step (so a cached dataset gets fresh noise every epoch),
or with one fixed pattern from `eval_seed` at evaluation (so test figures repeat in every
execution mode). Float vectors pass as float32.
"""
import numpy as np
import tensorflow as tf

from tfp_glow import data as data_lib
from tfp_glow.training import input_checks

__all__ = ["PreprocessingMixin"]


class PreprocessingMixin:
    """Data checks and dequantization of `FlowModel` (a mixin of it)."""

    @property
    def is_image(self):
        return self.n_bits is not None

    def check_batch(self, x, what="Data", allow_empty=False):
        """Raise a clear `ValueError` if a batch does not fit the model; returns it as a tensor
        (`input_checks.check_events`, the one input check)."""
        return input_checks.check_events(self, x, what, allow_empty=allow_empty)

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

"""`FlowModel`'s train, test and predict steps, and the metrics they keep.

One set of steps for every model: the conditioning input (a conditional model's labels or
context) comes with the batch as `y` and reaches the flow as an explicit argument. A subclass
adds its own evaluation through three hooks: `_evaluation_log_prob` (what evaluation scores,
e.g. the marginal likelihood without labels), `_update_evaluation_metrics` (e.g. accuracy) and
`_prediction_extras`.
"""
import keras
import tensorflow as tf

from tfp_glow.numerics import averaging
from tfp_glow.numerics import stability
from tfp_glow.training.distribute import multi_worker_safe_logs
from tfp_glow.training import generation, input_checks, inputs, weighting

__all__ = ["StepsMixin"]


class StepsMixin:
    """The steps of `FlowModel` (a mixin of it; see its docstring for the figures)."""

    @property
    def metrics(self):
        return [self.loss_tracker, self.nll_tracker, self.bpd_tracker, *self.evaluation_trackers]

    # ------------------------------------------------------------------ hooks
    def _evaluation_log_prob(self, x_pre, y):
        """`(log p [N], extras)`: what evaluation scores for the batch `x_pre` with targets `y`
        (`log p(x)`, or `log p(x | y)` for a conditional flow), and a subclass's extra values."""
        return self.log_prob_and_bpd(x_pre, context=self._step_context(y))[0], None

    def _update_evaluation_metrics(self, extras, y, sample_weight):
        """Update a subclass's evaluation trackers; returns those to log for this batch."""
        return []

    def _prediction_extras(self, extras):
        """A subclass's extra outputs of `predict`."""
        return {}

    # ------------------------------------------------------------------ steps
    def __call__(self, inputs, *args, **kwargs):
        """Keras' `__call__`, after the input check (here, so its error is not wrapped by Keras')."""
        x = inputs[0] if isinstance(inputs, (tuple, list)) else inputs
        input_checks.check_events(self, x)
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, training=False):
        """Per-example `log p(x)` of raw `x` (or `log p(x | y)` of `(x, y)`), dequantized with the
        fixed noise unless `training`."""
        pair = isinstance(inputs, (tuple, list))
        x, y = (inputs[0], inputs[1] if len(inputs) > 1 else None) if pair else (inputs, None)
        input_checks.check_static_shape(self, x.shape)  # `__call__` checked the values
        x_pre, _ = self.dequantize(x, fixed_noise=not training)
        return self._evaluation_log_prob(x_pre, y)[0]

    def train_step(self, data):
        """One update: loss, gradients, clipping, and the update only if everything is finite.

        A non-finite loss or gradient (on any replica) skips the update: the weights, the
        optimizer state and its step counter (and the weight average) stay as they were,
        `nonfinite_steps` counts it, and the epoch's metrics leave it out. All of it happens
        inside the compiled step.
        """
        x, y, sample_weight = inputs.unpack(data)
        code = input_checks.batch_code(self, x)  # None: nothing to check (uint8 images)
        context = self._step_context(y)
        with tf.GradientTape() as tape:
            seed = self.train_noise_seed()
            context = self._training_context(context, seed)
            x_pre, log_q = self.dequantize(x, seed=seed)
            if self.noise_sigma:  # generation mode: the flow learns the smoothed density
                x_pre = generation.add_training_noise(x_pre, self.noise_sigma, seed)
            _, nll, bpd = self.log_prob_and_bpd(x_pre, log_q, context=context)
            loss, scaled, sample_weight, replicas = weighting.training_loss(bpd, sample_weight)
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
        # a batch that failed the input check is never applied (InputGuard then stops fit)
        applied = finite if code is None else tf.logical_and(finite, tf.equal(code, 0))
        if lso:
            # the LossScaleOptimizer skips non-finite updates itself and must see them to
            # lower its scale
            self.optimizer.apply([None if g is None else g * tf.cast(scale, g.dtype) for g in grads], variables)
            averaging.update(self, applied=finite)
        elif self.skip_nonfinite or code is not None:
            stability.apply_if_finite(self.optimizer, grads, variables, applied if self.skip_nonfinite else
                                      tf.equal(code, 0), on_apply=lambda: averaging.update(self))
        else:
            self.optimizer.apply(grads, variables)
            averaging.update(self)
        self._record_input_code(code)
        return self._update_train_metrics(loss, nll, bpd, grad_norm, applied, replicas, sample_weight,
                                          counted=None if code is None else tf.equal(code, 0))

    def _record_input_code(self, code):
        """Add a batch's input-check code to `input_error_tracker` (summed over replicas on read)."""
        if code is None:
            return
        ctx = tf.distribute.get_replica_context()
        replicas = 1 if ctx is None else ctx.num_replicas_in_sync
        self.input_error_tracker.update_state(tf.cast(code, tf.float32) / float(replicas))

    def _update_train_metrics(self, loss, nll, bpd, grad_norm, finite, replicas, sample_weight=None, counted=None):
        """`counted`: False for a batch that failed the input check, not counted as non-finite."""
        w = tf.cast(finite, tf.float32)
        safe = lambda v: tf.where(finite, v, tf.zeros_like(v))  # NaN * 0 would still be NaN
        per_example = tf.ones_like(bpd) if sample_weight is None else sample_weight
        n = tf.reduce_sum(per_example)
        if weighting.weights_across_replicas(sample_weight):
            nll_mean, bpd_mean, total = weighting.global_weighted_means(sample_weight, safe(nll), safe(bpd))
            for tracker, value in ((self.loss_tracker, bpd_mean), (self.nll_tracker, nll_mean),
                                   (self.bpd_tracker, bpd_mean)):
                tracker.update_state(value, sample_weight=total * w)
        else:
            self.loss_tracker.update_state(safe(loss), sample_weight=n * w)
            self.nll_tracker.update_state(safe(nll), sample_weight=w * per_example)
            self.bpd_tracker.update_state(safe(bpd), sample_weight=w * per_example)
        self.grad_norm_tracker.update_state(safe(grad_norm), sample_weight=w)
        # summed over replicas on read: each replica counts its share of the (agreed) skip
        skipped = (1.0 - w) if counted is None else (1.0 - w) * tf.cast(counted, tf.float32)
        self.nonfinite_tracker.update_state(skipped / replicas)
        # classification and other evaluation figures are measured at evaluation only
        logs = {m.name: m.result() for m in (self.loss_tracker, self.nll_tracker, self.bpd_tracker)}
        logs["grad_norm"] = self.grad_norm_tracker.result()
        logs["nonfinite_steps"] = self.nonfinite_tracker.result()
        return multi_worker_safe_logs(logs)

    def reset_metrics(self):
        super().reset_metrics()
        self.grad_norm_tracker.reset_state()  # per epoch; nonfinite_steps is a running total

    def _update_metrics(self, loss, nll, bpd, sample_weight=None, extra=()):
        # weighted by the batch size (or its total sample weight), so `loss` is the per-example
        # (weighted) mean like the other two
        n = tf.cast(tf.shape(bpd)[0], tf.float32) if sample_weight is None else tf.reduce_sum(sample_weight)
        # (evaluate reads the metrics' replica-summed state afterwards: right with any weights)
        self.loss_tracker.update_state(loss, sample_weight=n)
        self.nll_tracker.update_state(nll, sample_weight=sample_weight)
        self.bpd_tracker.update_state(bpd, sample_weight=sample_weight)
        # under MultiWorkerMirroredStrategy Keras reduces these along axis 0 (see distribute.py)
        trackers = (self.loss_tracker, self.nll_tracker, self.bpd_tracker, *extra)
        return multi_worker_safe_logs({m.name: m.result() for m in trackers})

    def test_step(self, data):
        x, y, sample_weight = inputs.unpack(data)
        self._record_input_code(input_checks.batch_code(self, x))
        x_pre, log_q = self.dequantize(x, fixed_noise=True)
        log_p, extras = self._evaluation_log_prob(x_pre, y)
        _, nll, bpd = self._scores(log_p, log_q)
        loss, sample_weight = weighting.weighted_mean(bpd, sample_weight)
        extra = self._update_evaluation_metrics(extras, y, sample_weight)
        return self._update_metrics(loss, nll, bpd, sample_weight, extra)

    def predict_step(self, data):
        x, y, _ = inputs.unpack(data)
        self._record_input_code(input_checks.batch_code(self, x))
        x_pre, log_q = self.dequantize(x, fixed_noise=True)
        log_p, extras = self._evaluation_log_prob(x_pre, y)
        log_p, nll, bpd = self._scores(log_p, log_q)
        return {**self._prediction_extras(extras), "log_prob": log_p, "nll": nll, "bits_per_dim": bpd}

"""Training stability: warmup, clipping, non-finite steps that never reach the weights, and a
28x28 regression run that diverged before the coupling direction was fixed."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_glow as tg
from tfp_glow.training import callbacks as cb
from tfp_glow.numerics import stability


def test_linear_warmup_matches_the_formula_and_serializes():
    sched = stability.LinearWarmup(2e-3, 10)
    steps = np.arange(0, 30)
    got = np.array([float(sched(s)) for s in steps])
    np.testing.assert_allclose(got, 2e-3 * np.minimum(1.0, (steps + 1) / 10.0), rtol=1e-6)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(sched))
    assert isinstance(again, stability.LinearWarmup)
    np.testing.assert_allclose(float(again(3)), 2e-3 * 0.4, rtol=1e-6)
    # around another schedule
    inner = keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.5)
    both = stability.LinearWarmup(inner, 4)
    np.testing.assert_allclose(float(both(1)), float(inner(1)) * 0.5, rtol=1e-6)
    np.testing.assert_allclose(float(both(20)), float(inner(20)), rtol=1e-6)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "10"])
def test_linear_warmup_rejects_bad_steps(bad):
    with pytest.raises(ValueError, match="warmup_steps"):
        stability.LinearWarmup(1e-3, bad)


def test_clip_and_check_matches_tf_clip_by_global_norm():
    rng = np.random.default_rng(0)
    grads = [tf.constant(rng.normal(size=s).astype(np.float32) * 10) for s in [(3, 4), (5,), ()]]
    clipped, norm, finite = stability.clip_and_check(grads + [None], tf.constant(1.0), 2.0)
    ref, ref_norm = tf.clip_by_global_norm(grads, 2.0)
    np.testing.assert_allclose(norm, ref_norm, rtol=1e-6)
    for a, b in zip(clipped[:3], ref):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    assert clipped[3] is None and bool(finite)
    _, _, finite = stability.clip_and_check([grads[0], tf.constant([np.nan])], tf.constant(1.0), 2.0)
    assert not bool(finite)
    _, _, finite = stability.clip_and_check(grads, tf.constant(np.inf), None)
    assert not bool(finite)


def _toy_model(**compile_kwargs):
    model = tg.FlowModel(tg.FlowConfig("realnvp", (2,), dict(couplings_per_stage=2, hidden=(8, 8))), n_bits=None)
    model.compile(**compile_kwargs)
    model.initialize(tg.data.toy_2d("moons", 64))
    return model


@pytest.mark.parametrize("jit", [False, True])
def test_a_non_finite_step_never_reaches_the_weights(jit):
    model = _toy_model(jit_compile=jit)
    good = tg.data.toy_2d("moons", 32).astype(np.float32)
    model.train_on_batch(good)
    before = [w.numpy().copy() for w in model.weights]
    iterations = int(model.optimizer.iterations.numpy())
    bad = good.copy()
    bad[3, 0] = 3e38  # finite data (the input check passes it) whose loss overflows: a non-finite step
    logs = model.train_on_batch(bad, return_dict=True)
    assert logs["nonfinite_steps"] == 1.0
    for b, w in zip(before, model.weights):
        np.testing.assert_array_equal(b, w.numpy(), err_msg=w.path)
    assert int(model.optimizer.iterations.numpy()) == iterations  # warmup does not advance
    logs = model.train_on_batch(good, return_dict=True)  # training goes on
    assert int(model.optimizer.iterations.numpy()) == iterations + 1
    assert np.isfinite(logs["loss"]) and logs["nonfinite_steps"] == 1.0


def test_without_skipping_a_non_finite_step_does_reach_the_weights():
    """The switch works, and the check above is not vacuous."""
    model = _toy_model(skip_nonfinite=False, clip_norm=None)
    bad = tg.data.toy_2d("moons", 32).astype(np.float32)
    bad[3, 0] = 3e38  # its loss overflows float32
    model.train_on_batch(bad)
    assert not all(np.all(np.isfinite(w.numpy())) for w in model.trainable_weights)


def test_fit_stops_with_a_clear_error_after_n_non_finite_steps_in_a_row():
    model = _toy_model(max_nonfinite_steps=3)
    good = tg.data.toy_2d("moons", 64).astype(np.float32)
    bad = np.full((64 * 6, 2), 3e38, np.float32)  # finite data whose loss overflows
    # the first batch (checked by fit) is good; the next six are not
    ds = tf.data.Dataset.from_tensor_slices(np.concatenate([good, bad])).batch(64)
    with pytest.raises(cb.NonFiniteLossError, match=r"3 steps in a row.*non-finite.*skipped"):
        model.fit(ds, epochs=1, verbose=0)
    assert all(np.all(np.isfinite(w.numpy())) for w in model.weights)


def test_isolated_non_finite_steps_do_not_stop_fit():
    model = _toy_model(max_nonfinite_steps=2)
    good = tg.data.toy_2d("moons", 64).astype(np.float32)
    bad = np.full((64, 2), 3e38, np.float32)  # finite data whose loss overflows
    ds = tf.data.Dataset.from_tensor_slices(np.concatenate([good, bad, good, bad, good])).batch(64)
    history = model.fit(ds, epochs=1, verbose=0)
    assert history.history["nonfinite_steps"][-1] == 2.0
    assert np.isfinite(history.history["loss"][-1])


def test_compile_warms_up_the_given_optimizer_and_validates_its_options():
    model = _toy_model(optimizer=keras.optimizers.Adam(4e-3), warmup_steps=4)
    lr = model.optimizer.learning_rate
    np.testing.assert_allclose(float(lr), 1e-3, rtol=1e-6)  # step 0: 1/4 of 4e-3
    model = _toy_model(optimizer=keras.optimizers.Adam(4e-3), warmup_steps=0)
    np.testing.assert_allclose(float(model.optimizer.learning_rate), 4e-3, rtol=1e-6)
    for kwargs, what in [(dict(clip_norm=-1.0), "clip_norm"), (dict(warmup_steps=-3), "warmup_steps"),
                         (dict(max_nonfinite_steps=0), "max_nonfinite_steps")]:
        with pytest.raises(ValueError, match=what):
            _toy_model(**kwargs)


def test_digits28_glow_that_diverged_before_trains_finite():
    """Regression: before the coupling direction fix, this bare recipe (no warmup, no clipping,
    no skipping; Adam 1e-3, batch 64) on the 28x28 digits went non-finite within 40 steps.
    Now every step's loss, the weights and samples at T = 1 stay finite, and it learns."""
    keras.utils.set_random_seed(0)
    x = tg.data.load_digits28("train")
    model = tg.FlowModel(tg.FlowConfig("glow", (28, 28, 1), dict(levels=2, steps=2, hidden_channels=48)), n_bits=8)
    model.compile(learning_rate=1e-3, warmup_steps=0, clip_norm=None, skip_nonfinite=False)
    model.initialize(x[:256])
    ds = tg.data.make_dataset(x, 64, seed=0, repeat=True, drop_remainder=True)
    losses = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(float(logs["loss"]))

    model.fit(ds, steps_per_epoch=100, epochs=1, verbose=0, callbacks=[Record()])
    assert len(losses) == 100 and np.all(np.isfinite(losses))
    assert losses[-1] < losses[0] - 1.0  # it trains (running mean of bits/dim)
    assert all(np.all(np.isfinite(w.numpy())) for w in model.weights)
    for t in (1.0, 0.7):
        s = model.sample(64, temperature=t, seed=1).numpy()
        assert np.all(np.isfinite(s)), t

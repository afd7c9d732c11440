"""Tests of tfp_glow.training.time_limit.TimeLimit: where it stops `fit`, on a fake clock and in `fit`."""
import types

import keras
import numpy as np
import pytest

from tfp_glow.training.time_limit import TimeLimit


class _Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _run_epochs(limit, clock, durations):
    """Drives the callback as `fit` does, the epochs lasting `durations`; returns the epochs run."""
    limit.set_model(types.SimpleNamespace(stop_training=False))
    limit.on_train_begin()
    for epoch, d in enumerate(durations):
        limit.on_epoch_begin(epoch)
        clock.now += d
        limit.on_epoch_end(epoch)
        if limit.model.stop_training:
            return epoch + 1
    return len(durations)


def test_stops_after_the_last_epoch_that_fits():
    clock = _Clock()
    limit = TimeLimit(100.0, clock=clock)
    # 10 s epochs: after epoch 9 (90 s) the next would end at 100 s, which still fits; after
    # epoch 10 (100 s) the next would end at 110 s.
    assert _run_epochs(limit, clock, [10.0] * 20) == 10
    assert limit.stopped_epoch == 10 and limit.elapsed == pytest.approx(100.0)


def test_first_epoch_always_runs_and_a_slow_epoch_stops_early():
    clock = _Clock()
    limit = TimeLimit(5.0, clock=clock)
    assert _run_epochs(limit, clock, [30.0, 1.0]) == 1  # compiling: longer than the whole budget
    clock2 = _Clock()
    limit2 = TimeLimit(100.0, clock=clock2)
    assert _run_epochs(limit2, clock2, [10.0, 10.0, 50.0, 10.0]) == 3  # 70 s + 50 s would overrun


def test_no_stop_within_the_budget_and_a_second_fit_starts_afresh():
    clock = _Clock()
    limit = TimeLimit(1000.0, clock=clock)
    assert _run_epochs(limit, clock, [10.0] * 5) == 5 and limit.stopped_epoch is None
    limit = TimeLimit(25.0, clock=clock)
    assert _run_epochs(limit, clock, [10.0] * 5) == 2
    assert _run_epochs(limit, clock, [10.0] * 5) == 2  # on_train_begin resets the start


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan")])
def test_bad_budget_is_a_value_error(bad):
    with pytest.raises(ValueError, match="seconds"):
        TimeLimit(bad)


def test_stops_keras_fit():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.zeros((8, 2), np.float32)
    clock = _Clock()

    class Tick(keras.callbacks.Callback):  # every batch takes 1 s
        def on_train_batch_end(self, batch, logs=None):
            clock.now += 1.0

    limit = TimeLimit(10.0, clock=clock)
    history = model.fit(x, x[:, :1], batch_size=4, epochs=50, callbacks=[Tick(), limit], verbose=0)
    assert len(history.history["loss"]) == 5 == limit.stopped_epoch  # 2 s epochs: 10 s, 12 s would overrun

"""Tests of tfp_glow.training.callbacks: NaNGuard, FlowCheckpoint (restore round trip), SampleGrid, is_chief."""
import os
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_glow.training import callbacks as cb
from tfp_glow import data as data_lib
from tfp_glow.models import FlowConfig
from tfp_glow.training import FlowModel
import support

CONFIG = support.ONE_LEVEL_GLOW


@pytest.fixture(scope="module")
def digits():
    return data_lib.load_digits("train")[:256]


def _model(lr=1e-3):
    model = FlowModel(CONFIG, n_bits=5)
    model.compile(keras.optimizers.Adam(lr), jit_compile=False)
    return model


def _dataset(x):
    return data_lib.make_dataset(x, 64, shuffle=True, seed=0, drop_remainder=True)


def _checkpoint_values(path):
    return {name: tf.train.load_variable(path, name) for name, _ in tf.train.list_variables(path)
            if not name.startswith("_CHECKPOINTABLE")}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_flow_checkpoint_restore_round_trip_and_resume(tmp_path, digits):
    ckpt_dir = str(tmp_path / "ckpt")
    model = _model()
    ckpt = cb.FlowCheckpoint(ckpt_dir)
    model.fit(_dataset(digits), epochs=2, callbacks=[ckpt], verbose=0, shuffle=False)
    assert ckpt.latest.endswith("ckpt-2")
    iterations = int(model.optimizer.iterations.numpy())
    assert iterations == 8

    fresh = _model()  # its optimizer may be unbuilt (Keras 3 builds lazily): restore builds it
    epoch = cb.FlowCheckpoint(ckpt_dir).restore(fresh)
    assert epoch == 2
    for w_old, w_new in zip(model.weights, fresh.weights):
        np.testing.assert_array_equal(w_old.numpy(), w_new.numpy(), err_msg=w_old.path)
    assert fresh.is_initialized  # actnorm's flag came back: fit will not re-initialise
    assert int(fresh.optimizer.iterations.numpy()) == iterations
    old_slots = [v.numpy() for v in model.optimizer.variables]
    new_slots = [v.numpy() for v in fresh.optimizer.variables]
    assert len(old_slots) == len(new_slots) > 2
    for a, b in zip(old_slots, new_slots):
        np.testing.assert_array_equal(a, b)

    # Training resumes: the epoch counter, the step counter and the checkpoint numbering go on.
    before = [w.numpy().copy() for w in fresh.trainable_weights]
    ckpt2 = cb.FlowCheckpoint(ckpt_dir)
    ckpt2.restore(fresh)
    history = fresh.fit(_dataset(digits), epochs=3, initial_epoch=epoch, callbacks=[ckpt2], verbose=0,
                        shuffle=False)
    assert history.epoch == [2]
    assert int(fresh.optimizer.iterations.numpy()) == iterations + 4
    assert ckpt2.latest.endswith("ckpt-3")
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(before, fresh.trainable_weights))
    assert np.isfinite(history.history["loss"][0])


def test_flow_checkpoint_restore_without_checkpoint_returns_zero(tmp_path):
    assert cb.FlowCheckpoint(str(tmp_path / "none")).restore(_model()) == 0


def test_flow_checkpoint_rejects_checkpoint_of_another_model(tmp_path, digits):
    ckpt_dir = str(tmp_path / "ckpt")
    model = _model()
    model.fit(_dataset(digits[:64]), epochs=1, callbacks=[cb.FlowCheckpoint(ckpt_dir)], verbose=0, shuffle=False)
    other = FlowModel(FlowConfig("glow", (8, 8, 1), {"levels": 1, "steps": 1, "hidden_channels": 16}), n_bits=5)
    other.compile(keras.optimizers.Adam(), jit_compile=False)
    with pytest.raises(ValueError, match="does not fit"):
        cb.FlowCheckpoint(ckpt_dir).restore(other)


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path, digits):
    ckpt_dir = str(tmp_path / "ckpt")
    model = _model()
    ckpt = cb.FlowCheckpoint(ckpt_dir)
    guard = cb.NaNGuard(ckpt_dir, max_nonfinite_steps=2)
    model.fit(_dataset(digits), epochs=1, callbacks=[guard, ckpt], verbose=0, shuffle=False)
    good_path = ckpt.latest
    assert good_path.endswith("ckpt-1")
    good = _checkpoint_values(good_path)
    files_before = sorted(os.listdir(ckpt_dir))

    # Force a NaN: the actnorm bias becomes NaN, so the loss is NaN from the first batch; every
    # step is skipped, and the guard stops after two in a row.
    bias = next(w for w in model.trainable_weights if w.path.endswith("actnorm/bias"))
    bias.assign(tf.fill(bias.shape, float("nan")))
    with pytest.raises(cb.NonFiniteLossError) as info:
        model.fit(_dataset(digits), epochs=3, initial_epoch=1, callbacks=[guard, ckpt], verbose=0, shuffle=False)
    message = str(info.value)
    assert "2 steps in a row" in message and "non-finite" in message and "epoch 2, step 2" in message
    assert good_path in message and "after epoch 1" in message

    # The checkpoint directory is untouched and the checkpoint still loads into a fresh model.
    assert sorted(os.listdir(ckpt_dir)) == files_before
    assert tf.train.latest_checkpoint(ckpt_dir) == good_path
    _assert_same(good, _checkpoint_values(good_path))
    fresh = _model()
    assert cb.FlowCheckpoint(ckpt_dir).restore(fresh) == 1
    assert cb.all_weights_finite(fresh)
    logs = fresh.evaluate(_dataset(digits[:64]), verbose=0, return_dict=True)
    assert np.isfinite(logs["bits_per_dim"])


def test_nan_guard_message_without_checkpoint():
    guard = cb.NaNGuard(None)
    guard.on_epoch_begin(0)
    guard.on_train_batch_end(0, {"loss": 1.0})
    with pytest.raises(cb.NonFiniteLossError, match=r"inf at epoch 1, step 4.*no checkpoint"):
        guard.on_train_batch_end(3, {"loss": float("inf")})
    guard = cb.NaNGuard("/nonexistent/dir")
    with pytest.raises(cb.NonFiniteLossError, match="No checkpoint was written yet"):
        guard.on_train_batch_end(0, {"loss": np.float32("nan")})


def test_flow_checkpoint_skips_non_finite_epochs(tmp_path, digits):
    model = _model()
    model.initialize(digits[:64])
    ckpt = cb.FlowCheckpoint(str(tmp_path / "ckpt"))
    ckpt.set_model(model)
    ckpt.on_epoch_end(0, {"loss": float("nan")})
    assert ckpt.latest is None and ckpt.skipped_epochs == [1]
    ckpt.on_epoch_end(0, {"loss": 3.0})
    assert ckpt.latest.endswith("ckpt-1")
    w = model.trainable_weights[0]
    w.assign(tf.fill(w.shape, float("inf")))
    ckpt.on_epoch_end(1, {"loss": 3.0})
    assert ckpt.latest.endswith("ckpt-1") and ckpt.skipped_epochs == [1, 2]


def test_sample_grid_images_and_2d(tmp_path, digits):
    model = _model()
    model.initialize(digits[:64])
    grid = cb.SampleGrid(str(tmp_path), n=16, every=2)
    grid.set_model(model)
    grid.set_params({"epochs": 3})
    grid.on_train_begin()
    for epoch in range(3):
        grid.on_epoch_end(epoch)
    assert [os.path.basename(p) for p in grid.written] == ["samples_epoch002.png", "samples_epoch003.png"]
    assert os.path.getsize(grid.written[0]) > 0

    vec = FlowModel(FlowConfig("realnvp", (2,), {"couplings_per_stage": 2, "hidden": [8, 8]}), n_bits=None)
    points = data_lib.toy_2d("moons", n=200)
    vec.initialize(points)
    grid2 = cb.SampleGrid(str(tmp_path / "toy"), n=100, data=points)
    grid2.set_model(vec)
    grid2.on_epoch_end(0)
    assert os.path.getsize(os.path.join(tmp_path, "toy", "samples_epoch001.png")) > 10_000


def _strategy(task_type, task_id, cluster):
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id)
    return types.SimpleNamespace(cluster_resolver=resolver)


def test_is_chief():
    assert cb.is_chief()
    assert cb.is_chief(types.SimpleNamespace(cluster_resolver=None))
    workers = {"worker": ["a:1", "b:1"]}
    assert cb.is_chief(_strategy("worker", 0, workers))
    assert not cb.is_chief(_strategy("worker", 1, workers))
    with_chief = {"chief": ["c:1"], "worker": ["a:1", "b:1"]}
    assert cb.is_chief(_strategy("chief", 0, with_chief))
    assert not cb.is_chief(_strategy("worker", 0, with_chief))
    assert cb.is_chief(_strategy(None, None, {}))


def test_non_chief_workers_write_nothing(tmp_path, digits, monkeypatch):
    worker1 = _strategy("worker", 1, {"worker": ["a:1", "b:1"]})
    grid = cb.SampleGrid(str(tmp_path / "samples"))
    grid.set_model(types.SimpleNamespace(distribute_strategy=worker1, is_image=True))
    grid.on_epoch_end(0)
    assert grid.written == [] and not os.path.exists(tmp_path / "samples")

    model = _model()
    model.initialize(digits[:64])
    monkeypatch.setattr(cb, "is_chief", lambda strategy=None: False)
    ckpt = cb.FlowCheckpoint(str(tmp_path / "ckpt"))
    ckpt.set_model(model)
    ckpt.on_epoch_end(0, {"loss": 3.0})  # saves to a temporary directory that is removed
    assert ckpt.latest is None and not os.path.exists(tmp_path / "ckpt" / "checkpoint")

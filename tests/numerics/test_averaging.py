"""The exponential moving average of the weights (`tfp_glow.numerics.averaging`, `compile(ema_decay=...)`).

References here are independent of the code under test: a numpy recomputation of the EMA from
the weights recorded after every step, and fresh models into which the averages are assigned
by hand.
"""
import json
import os
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_glow as tg
from tfp_glow import data, runs, training
from tfp_glow.numerics import averaging
from tfp_glow.training import persistence
from tfp_glow.data import splits
from cli_runner import run_cli
from support import TESTS
import support

TINY_GLOW = support.TINY_GLOW
TOY = tg.FlowConfig("realnvp", (2,), dict(couplings_per_stage=2, hidden=(8, 8)))
TIMEOUT = 240


def _digits(split="train", n=None):
    x = data.load_digits(split)
    return x if n is None else x[:n]


def _numpy_ema(history, decay, delay=0):
    """The EMA of `history` (the weights after each applied step, in order) by the formula, in
    float64: `avg_1 = w_1`, then `d_t = min(decay, (1 + t) / (10 + t))` with `t = i + delay`
    for the `i`-th step (`delay=-1` is the wrong convention of `t` before the step)."""
    avg = None
    for t, weights in enumerate(history, start=1):
        if avg is None:
            avg = [np.asarray(w, np.float64) for w in weights]
            continue
        d = min(decay, (1 + t + delay) / (10 + t + delay))
        avg = [d * a + (1 - d) * np.asarray(w, np.float64) for a, w in zip(avg, weights)]
    return avg


class _RecordWeights(keras.callbacks.Callback):
    """The trainable weights after every training step."""

    def __init__(self):
        super().__init__()
        self.history = []

    def on_train_batch_end(self, batch, logs=None):
        self.history.append([v.numpy().copy() for v in self.model.trainable_variables])


def _max_gap(a, b):
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) for x, y in zip(a, b))


def _trained_glow(decay=0.5, steps=12, jit_compile=False, lr=5e-3):
    """A tiny Glow fit for `steps` steps of 64 digits with EMA on, and the recorded weights."""
    keras.utils.set_random_seed(0)
    model = training.FlowModel(TINY_GLOW, n_bits=5)
    model.compile(optimizer=keras.optimizers.Adam(lr), warmup_steps=0, jit_compile=jit_compile, ema_decay=decay)
    record = _RecordWeights()
    history = model.fit(_digits("train", 64 * steps), batch_size=64, epochs=1, shuffle=False, verbose=0,
                        callbacks=[record])
    assert history.history["nonfinite_steps"][-1] == 0
    assert int(model.optimizer.iterations.numpy()) == steps
    return model, record.history


@pytest.fixture(scope="module")
def trained():
    return _trained_glow()


def _copy_with_averages(model):
    """A fresh model without EMA holding `model`'s weights, its trainable ones replaced by the
    averages, assigned by hand."""
    fresh = training.FlowModel(model.config_, n_bits=model.n_bits)
    fresh.compile(jit_compile=False)
    averages = set(id(v) for v in averaging.average_variables(model))
    fresh.set_weights([w.numpy() for w in model.weights if id(w) not in averages])
    for variable, average in zip(fresh.trainable_variables, model.weight_average.averages):
        variable.assign(average.numpy())
    return fresh


def _snapshot(model):
    return [w.numpy().copy() for w in model.weights]


# ------------------------------------------------------------------------ the update rule
@pytest.mark.parametrize("jit_compile", [False, True])
def test_the_averages_equal_a_numpy_recomputation_of_the_ema(jit_compile):
    decay, steps = 0.5, 12  # d_t = (1 + t) / (10 + t) up to t = 8, then the decay itself
    model, history = _trained_glow(decay, steps, jit_compile)
    expected = _numpy_ema(history, decay)
    got = [a.numpy() for a in model.weight_average.averages]
    assert _max_gap(got, expected) < 2e-6
    # not vacuous: the average is not the last weights, and t counted before the step is told apart
    assert _max_gap(got, history[-1]) > 1e-3
    assert _max_gap(expected, _numpy_ema(history, decay, delay=-1)) > 1e-5  # 5x the tolerance
    assert float(model.weight_average.started.numpy()) == 1.0


def test_the_first_update_copies_the_weights():
    model, history = _trained_glow(decay=0.999, steps=1)
    for average, w in zip(model.weight_average.averages, history[0]):
        np.testing.assert_array_equal(average.numpy(), w)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_a_skipped_non_finite_step_leaves_the_averages_as_they_were(jit_compile):
    decay = 0.9
    model = tg.FlowModel(TOY, n_bits=None)
    model.compile(jit_compile=jit_compile, ema_decay=decay, warmup_steps=0)
    good = tg.data.toy_2d("moons", 32).astype(np.float32)
    model.initialize(good)
    model.train_on_batch(good)
    w1 = [v.numpy().copy() for v in model.trainable_variables]
    before = [a.numpy().copy() for a in model.weight_average.weights]
    bad = good.copy()
    bad[3, 0] = 3e38  # finite data whose loss overflows: a non-finite step
    logs = model.train_on_batch(bad, return_dict=True)
    assert logs["nonfinite_steps"] == 1.0 and int(model.optimizer.iterations.numpy()) == 1
    for b, a in zip(before, model.weight_average.weights):
        np.testing.assert_array_equal(b, a.numpy(), err_msg=a.path)
    model.train_on_batch(good)  # the second applied step: t = 2, d = min(0.9, 3 / 12)
    w2 = [v.numpy() for v in model.trainable_variables]
    got = [a.numpy() for a in model.weight_average.averages]
    assert _max_gap(got, _numpy_ema([w1, w2], decay)) < 1e-6


# ------------------------------------------------------------- evaluation with the averages
def test_evaluate_and_sampling_use_the_averages_and_leave_the_raw_weights(trained):
    model, history = trained
    raw = _snapshot(model)
    fresh = _copy_with_averages(model)
    test = data.make_dataset(_digits("test"), 128, shuffle=False)
    averaged = model.evaluate(test, return_dict=True, verbose=0)
    by_hand = fresh.evaluate(test, return_dict=True, verbose=0)
    assert averaged["bits_per_dim"] == pytest.approx(by_hand["bits_per_dim"], rel=1e-6)
    x = _digits("test", 16)
    np.testing.assert_allclose(model.predict(x, verbose=0)["bits_per_dim"], fresh.predict(x, verbose=0)["bits_per_dim"],
                               rtol=1e-5)
    np.testing.assert_allclose(model.sample(4, seed=3), fresh.sample(4, seed=3), atol=1e-5)
    np.testing.assert_array_equal(model.sample_images(4, 0.7, seed=3), fresh.sample_images(4, 0.7, seed=3))
    z = model.encode(x)
    np.testing.assert_allclose(z, fresh.encode(x), atol=1e-5)
    np.testing.assert_allclose(model.decode(z), fresh.decode(z), atol=1e-5)
    for before, w in zip(raw, model.weights):  # the raw weights (and the averages) are back
        np.testing.assert_array_equal(before, w.numpy(), err_msg=w.path)
    # not vacuous: the raw weights score differently
    raw_model = training.FlowModel(TINY_GLOW, n_bits=5)
    raw_model.compile(jit_compile=False)
    raw_model.set_weights([w.numpy() for w in model.weights if id(w) not in
                           {id(v) for v in averaging.average_variables(model)}])
    raw_bpd = raw_model.evaluate(test, return_dict=True, verbose=0)["bits_per_dim"]
    assert abs(raw_bpd - averaged["bits_per_dim"]) > 1e-3


def test_fit_validation_reports_the_averaged_model():
    keras.utils.set_random_seed(0)
    model = training.FlowModel(TINY_GLOW, n_bits=5)
    model.compile(optimizer=keras.optimizers.Adam(5e-3), warmup_steps=0, jit_compile=False, ema_decay=0.5)
    val = data.make_dataset(_digits("validation"), 144, shuffle=False)
    history = model.fit(_digits("train", 64 * 6), batch_size=64, epochs=1, shuffle=False, verbose=0,
                        validation_data=val)
    expected = _copy_with_averages(model).evaluate(val, return_dict=True, verbose=0)["bits_per_dim"]
    assert history.history["val_bits_per_dim"][-1] == pytest.approx(expected, rel=1e-6)


def test_averaged_weights_swaps_back_on_an_exception_and_nests(trained):
    model, _ = trained
    raw = [v.numpy().copy() for v in model.trainable_variables]
    averages = [a.numpy().copy() for a in model.weight_average.averages]
    with pytest.raises(RuntimeError, match="inside"):
        with model.averaged_weights():
            for v, a in zip(model.trainable_variables, averages):
                np.testing.assert_array_equal(v.numpy(), a)
            with model.averaged_weights():  # nested: still the averages, not swapped back
                np.testing.assert_array_equal(model.trainable_variables[0].numpy(), averages[0])
            np.testing.assert_array_equal(model.trainable_variables[0].numpy(), averages[0])
            raise RuntimeError("inside")
    for v, r in zip(model.trainable_variables, raw):
        np.testing.assert_array_equal(v.numpy(), r)
    for a, r in zip(model.weight_average.averages, averages):
        np.testing.assert_array_equal(a.numpy(), r)


def test_without_ema_nothing_changes_and_the_context_is_a_no_op():
    model = training.FlowModel(TINY_GLOW, n_bits=5)
    model.compile(jit_compile=False)
    assert model.ema_decay is None and model.weight_average is None
    assert averaging.average_variables(model) == []
    assert all("weight_average" not in w.path for w in model.weights)
    assert averaging.WEIGHTS_PATH not in persistence.model_weights_structure(model)
    before = _snapshot(model)
    with model.averaged_weights():
        pass
    for b, w in zip(before, model.weights):
        np.testing.assert_array_equal(b, w.numpy())
    model.compile(jit_compile=False, ema_decay=0)  # 0 is off too
    assert model.ema_decay is None and model.weight_average is None


def test_before_the_first_step_the_averaged_model_is_the_model():
    model = training.FlowModel(TINY_GLOW, n_bits=5)
    model.compile(jit_compile=False, ema_decay=0.99)
    model.initialize(_digits("train", 128))
    x = _digits("test", 8)
    before = _snapshot(model)
    with model.averaged_weights():
        for b, w in zip(before, model.weights):
            np.testing.assert_array_equal(b, w.numpy())
    assert np.all(np.isfinite(model.predict(x, verbose=0)["bits_per_dim"]))


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5, float("nan"), "0.9", True, [0.9]])
def test_compile_refuses_a_bad_decay(decay):
    model = training.FlowModel(TINY_GLOW, n_bits=5)
    with pytest.raises(ValueError, match="ema_decay must be a float in \\(0, 1\\)"):
        model.compile(jit_compile=False, ema_decay=decay)


def test_a_recompile_keeps_the_averages_and_can_change_the_decay():
    model = tg.FlowModel(TOY, n_bits=None)
    model.compile(jit_compile=False, ema_decay=0.5)
    batch = tg.data.toy_2d("moons", 32).astype(np.float32)
    model.initialize(batch)
    model.train_on_batch(batch)
    average = model.weight_average
    values = [a.numpy().copy() for a in average.averages]
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False, ema_decay=0.9)
    assert model.weight_average is average and average.decay == 0.9 and model.ema_decay == 0.9
    for a, v in zip(average.averages, values):
        np.testing.assert_array_equal(a.numpy(), v)
    model.compile(jit_compile=False)  # off: no swap, no update, the average stays in the model
    assert model.ema_decay is None and model.weight_average is average
    raw = [v.numpy().copy() for v in model.trainable_variables]
    with model.averaged_weights():
        for v, r in zip(model.trainable_variables, raw):
            np.testing.assert_array_equal(v.numpy(), r)
    model.train_on_batch(batch)
    for a, v in zip(average.averages, values):
        np.testing.assert_array_equal(a.numpy(), v)


# ------------------------------------------------------------------------------ persistence
def _file_layout(path):
    """`{group: {key: shape}}` of every variable group of a `.weights.h5` file but the optimizer's."""
    layout = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and name.endswith("vars") and not name.startswith("optimizer"):
            layout[name] = {k: v.shape for k, v in obj.items()}

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return layout


def _same_weights(a, b):
    assert len(a.weights) == len(b.weights)
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=x.path)


def test_checkpoint_round_trip_restores_weights_and_averages(trained, tmp_path):
    model, _ = trained
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    names = [n for n, _ in tf.train.list_variables(path)]
    assert sum("weight_average" in n for n in names) == len(model.trainable_variables) + 1  # averages, started
    restored = training.FlowModel(TINY_GLOW, n_bits=5)
    # the model's checkpoint holds its optimizer too: the same kind, with a float learning rate
    restored.compile(optimizer=keras.optimizers.Adam(1e-3), warmup_steps=0, jit_compile=False, ema_decay=0.5)
    status = tf.train.Checkpoint(model=restored).restore(path)
    status.expect_partial()
    status.assert_existing_objects_matched()
    _same_weights(model, restored)


def test_weights_file_round_trip_restores_weights_and_averages(trained, tmp_path):
    model, _ = trained
    path = str(tmp_path / "ema.weights.h5")
    model.save_weights(path)
    averages = _file_layout(path)[averaging.WEIGHTS_PATH + "/vars"]
    assert len(averages) == len(model.trainable_variables) + 1  # the averages and `started`
    restored = training.FlowModel(TINY_GLOW, n_bits=5)
    restored.compile(jit_compile=False, ema_decay=0.5)
    restored.load_weights(path)
    _same_weights(model, restored)
    x = _digits("test", 16)
    np.testing.assert_array_equal(model.predict(x, verbose=0)["bits_per_dim"],
                                  restored.predict(x, verbose=0)["bits_per_dim"])


def test_files_without_averages_load_and_ema_off_files_are_unchanged(trained, tmp_path):
    model, _ = trained
    raw = training.FlowModel(TINY_GLOW, n_bits=5)
    raw.compile(jit_compile=False)
    averages = {id(v) for v in averaging.average_variables(model)}
    raw.set_weights([w.numpy() for w in model.weights if id(w) not in averages])
    old = str(tmp_path / "plain.weights.h5")
    raw.save_weights(old)
    ema_file = str(tmp_path / "ema.weights.h5")
    model.save_weights(ema_file)
    plain, with_averages = _file_layout(old), _file_layout(ema_file)
    # EMA off writes exactly the layers it wrote before: the EMA file's minus the average
    assert not any("weight_average" in k for k in plain)
    assert plain == {k: v for k, v in with_averages.items() if not k.startswith(averaging.WEIGHTS_PATH)}
    assert len(with_averages) == len(plain) + 1
    # a file without averages into a model without EMA, and into one with EMA (which restarts it)
    plain_model = training.FlowModel(TINY_GLOW, n_bits=5)
    plain_model.compile(jit_compile=False)
    plain_model.load_weights(old)
    _same_weights(raw, plain_model)
    ema_model = training.FlowModel(TINY_GLOW, n_bits=5)
    ema_model.compile(jit_compile=False, ema_decay=0.5)
    ema_model.load_weights(old)
    assert float(ema_model.weight_average.started.numpy()) == 0.0
    for v, w in zip(ema_model.trainable_variables, raw.trainable_variables):
        np.testing.assert_array_equal(v.numpy(), w.numpy())
    x = _digits("test", 16)
    np.testing.assert_array_equal(ema_model.predict(x, verbose=0)["bits_per_dim"],
                                  raw.predict(x, verbose=0)["bits_per_dim"])
    # and a file with averages into a model without EMA loads the raw weights
    plain_model.load_weights(ema_file)
    _same_weights(raw, plain_model)


def test_keras_file_round_trip_keeps_the_averages(trained, tmp_path):
    model, _ = trained
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.ema_decay == 0.5
    _same_weights(model, loaded)


def test_the_saved_model_export_holds_the_averages(trained, tmp_path):
    model, _ = trained
    fresh = _copy_with_averages(model)
    raw = _snapshot(model)
    path = model.export(str(tmp_path / "served"), signatures=["log_prob"], verbose=False)
    loaded = tf.saved_model.load(path)
    x = _digits("test", 16)
    served = loaded.log_prob(tf.constant(x))["bits_per_dim"].numpy()
    np.testing.assert_allclose(served, fresh.predict(x, verbose=0)["bits_per_dim"], rtol=1e-5)
    for before, w in zip(raw, model.weights):
        np.testing.assert_array_equal(before, w.numpy(), err_msg=w.path)


# --------------------------------------------------------------------------------- the CLI
def test_cli_train_with_ema_records_keeps_and_evaluates_the_averages(tmp_path):
    run_dir = str(tmp_path / "ema-run")
    base = ["--levels", "1", "--steps", "1", "--hidden", "8", "--no-xla", "--run-dir", run_dir]
    rc, out, err = run_cli(["train", "--epochs", "1", "--steps-per-epoch", "6", "--warmup-steps", "0", "--lr", "5e-3",
                            "--ema", "0.99", *base])
    assert rc == 0, out + err
    assert "ema 0.99" in out
    with open(os.path.join(run_dir, "config.json")) as f:
        assert json.load(f)["ema_decay"] == 0.99
    # evaluate reports the averaged model: against the averages assigned by hand
    rc, out, err = run_cli(["evaluate", run_dir, "--no-xla"])
    assert rc == 0, err
    printed = float(out.split("test bits/dim: ")[1].split()[0])
    model = runs.load_run(run_dir)
    assert model.ema_decay == 0.99
    test = data.make_dataset(splits.load_split("digits", "test")[0], runs.EVAL_BATCH_SIZE, shuffle=False)
    expected = _copy_with_averages(model).evaluate(test, return_dict=True, verbose=0)["bits_per_dim"]
    raw = _copy_raw(model).evaluate(test, return_dict=True, verbose=0)["bits_per_dim"]
    assert printed == pytest.approx(expected, abs=1e-4) and abs(raw - expected) > 1e-3
    # --resume keeps the decay, and refuses another one
    rc, out, err = run_cli(["train", "--resume", "--epochs", "2", *base[-3:]])
    assert rc == 0, out + err
    assert "ema 0.99" in out
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    assert config["ema_decay"] == 0.99 and config["epochs_done"] == 2
    rc, out, err = run_cli(["train", "--resume", "--epochs", "3", "--ema", "none", *base[-3:]])
    assert rc == 2 and "--ema 0.99" in err, out + err


def _copy_raw(model):
    raw = training.FlowModel(model.config_, n_bits=model.n_bits)
    raw.compile(jit_compile=False)
    averages = {id(v) for v in averaging.average_variables(model)}
    raw.set_weights([w.numpy() for w in model.weights if id(w) not in averages])
    return raw


# ------------------------------------------------------------------- MirroredStrategy child
def _child(out_path):
    """Two logical CPU devices: the averages under MirroredStrategy (no XLA: docs/design.md, Speed)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tfp_glow.training import distribute as D

    strategy = D.get_strategy("mirrored", ["/cpu:0", "/cpu:1"])
    keras.utils.set_random_seed(0)
    decay = 0.5
    good = tg.data.toy_2d("moons", 64 * 10).astype(np.float32)
    bad = np.full((64, 2), 3e38, np.float32)  # finite data whose loss overflows
    x = np.concatenate([good[:64 * 5], bad, good[64 * 5:]])  # 11 batches, the 6th non-finite
    with strategy.scope():
        model = tg.FlowModel(TOY, n_bits=None)
        model.compile(optimizer=keras.optimizers.Adam(5e-3), warmup_steps=0, ema_decay=decay)
    record = _RecordWeights()
    ds = tf.data.Dataset.from_tensor_slices(x).batch(64)
    history = model.fit(ds, epochs=1, verbose=0, callbacks=[record], shuffle=False)
    applied, previous = [], None
    for weights in record.history:  # a skipped step repeats the previous weights: leave it out
        if previous is None or _max_gap(weights, previous) > 0:
            applied.append(weights)
        previous = weights
    got = [a.numpy() for a in model.weight_average.averages]
    copies = [[np.asarray(c) for c in strategy.experimental_local_results(a.value)]
              for a in model.weight_average.weights]
    report = {
        "replicas": strategy.num_replicas_in_sync,
        "nonfinite_steps": history.history["nonfinite_steps"][-1],
        "iterations": int(model.optimizer.iterations.numpy()),
        "applied": len(applied),
        "gap_to_numpy": _max_gap(got, _numpy_ema(applied, decay)),
        "gap_to_last_weights": _max_gap(got, applied[-1]),
        "replica_gap": max(float(np.max(np.abs(c[0] - c[1]))) for c in copies),
        "raw_back": _max_gap([v.numpy() for v in model.trainable_variables], applied[-1]),
    }
    model.evaluate(good[:128], batch_size=64, verbose=0)  # swaps mirrored variables and back
    report["raw_after_evaluate"] = _max_gap([v.numpy() for v in model.trainable_variables], applied[-1])
    with open(out_path, "w") as f:
        json.dump(report, f)


def test_averages_under_mirrored_strategy_on_two_devices(tmp_path):
    out = tmp_path / "report.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    tests = str(TESTS)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(tests), tests, env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), str(out)], env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    report = json.loads(out.read_text())
    assert report["replicas"] == 2
    # one of 11 steps skipped: the optimizer took 10, and the weights changed 10 times
    # (`nonfinite_steps` logs 0.5 here, one replica's share: a logging matter, not the averages')
    assert report["nonfinite_steps"] > 0 and report["iterations"] == 10 == report["applied"]
    assert report["gap_to_numpy"] < 2e-6 and report["gap_to_last_weights"] > 1e-3
    assert report["replica_gap"] == 0.0
    assert report["raw_back"] == 0.0 and report["raw_after_evaluate"] == 0.0


if __name__ == "__main__":
    _child(sys.argv[1])

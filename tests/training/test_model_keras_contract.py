"""A table of standard Keras 3 usages, run against `FlowModel`.

Each row is what a Keras user would write: the inputs `fit` accepts, `sample_weight` and
`class_weight`, `compile` arguments, `evaluate`/`predict`, `export(path, format=...)`,
`summary()`. Weighted figures are compared with numpy's weighted mean of the per-example
bits/dim that `predict` returns.
"""
import io
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_glow import data, models, training
import support

VECTOR = models.FlowConfig("realnvp", (2,), dict(hidden=(8,), couplings_per_stage=2))
GLOW = support.TINY_GLOW
N = 128


@pytest.fixture(scope="module")
def moons():
    return data.toy_2d("moons", seed=0)[:N].astype(np.float32)


def _vector_model(seed=0, optimizer=None):
    keras.utils.set_random_seed(seed)
    model = training.FlowModel(VECTOR, n_bits=None)
    model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-2), jit_compile=False, warmup_steps=0)
    return model


@pytest.fixture(scope="module")
def model():
    return _vector_model()


class Batches(keras.utils.PyDataset):
    def __init__(self, x, batch_size):
        super().__init__()
        self.x, self.batch_size = x, batch_size

    def __len__(self):
        return len(self.x) // self.batch_size

    def __getitem__(self, i):
        return self.x[i * self.batch_size:(i + 1) * self.batch_size]


def _generator(x, batch_size, drawn):
    for i in range(len(x) // batch_size):
        drawn.append(i)
        yield (x[i * batch_size:(i + 1) * batch_size],)


# (id, usage) -> the usage returns a Keras History; every row must train one epoch
FIT_USAGES = {
    "arrays": lambda m, x: m.fit(x, batch_size=32, epochs=1, verbose=0),
    "arrays_validation_split": lambda m, x: m.fit(x, batch_size=32, epochs=1, verbose=0, validation_split=0.25),
    "arrays_validation_data": lambda m, x: m.fit(x, batch_size=32, epochs=1, verbose=0, validation_data=(x[:32],)),
    "dict_of_arrays": lambda m, x: m.fit({"x": x}, batch_size=32, epochs=1, verbose=0),
    "tf_data": lambda m, x: m.fit(tf.data.Dataset.from_tensor_slices(x).batch(32), epochs=1, verbose=0),
    "tf_data_x_y": lambda m, x: m.fit(tf.data.Dataset.from_tensor_slices((x, np.zeros(len(x)))).batch(32),
                                      epochs=1, verbose=0),
    "tf_data_repeat_steps": lambda m, x: m.fit(tf.data.Dataset.from_tensor_slices(x).batch(32).repeat(),
                                               steps_per_epoch=3, epochs=1, verbose=0),
    "py_dataset": lambda m, x: m.fit(Batches(x, 32), epochs=1, verbose=0),
    "generator": lambda m, x: m.fit(_generator(x, 32, []), steps_per_epoch=4, epochs=1, verbose=0),
    "sample_weight": lambda m, x: m.fit(x, sample_weight=np.linspace(0, 1, len(x)), batch_size=32, epochs=1,
                                        verbose=0),
    "class_weight_arrays": lambda m, x: m.fit(x, np.arange(len(x)) % 2, class_weight={0: 0.5, 1: 2.0},
                                              batch_size=32, epochs=1, verbose=0),
    "class_weight_tf_data": lambda m, x: m.fit(tf.data.Dataset.from_tensor_slices((x, np.arange(len(x)) % 2))
                                               .batch(32), class_weight={0: 0.5, 1: 2.0}, epochs=1, verbose=0),
    "callbacks": lambda m, x: m.fit(x, batch_size=32, epochs=2, verbose=0, validation_split=0.25, callbacks=[
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=1),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=1),
        keras.callbacks.TerminateOnNaN()]),
}


@pytest.mark.parametrize("usage", sorted(FIT_USAGES))
def test_fit_usage(model, moons, usage):
    before = model.optimizer.iterations.numpy()
    history = FIT_USAGES[usage](model, moons)
    assert np.isfinite(history.history["loss"][-1])
    assert set(history.history) >= {"loss", "nll", "bits_per_dim"}
    assert model.optimizer.iterations.numpy() > before


# (id, usage, error pattern): refused before any step, with a message that says what to do
REFUSED = {
    "unbatched_tf_data": (lambda m, x: m.fit(tf.data.Dataset.from_tensor_slices(x), epochs=1, verbose=0),
                          r"single examples of shape \[2\], not batches.*\.batch\("),
    "unbatched_validation": (lambda m, x: m.fit(x, epochs=1, verbose=0,
                                                validation_data=tf.data.Dataset.from_tensor_slices(x)),
                             r"validation_data yields single examples"),
    "unbatched_evaluate": (lambda m, x: m.evaluate(tf.data.Dataset.from_tensor_slices(x), verbose=0),
                           r"\.batch\("),
    "unbatched_predict": (lambda m, x: m.predict(tf.data.Dataset.from_tensor_slices(x), verbose=0),
                          r"\.batch\("),
    "class_weight_without_labels": (lambda m, x: m.fit(x, class_weight={0: 1.0}, epochs=1, verbose=0),
                                    r"class_weight maps labels.*fit\(x, y"),
    "class_weight_tf_data_without_labels": (
        lambda m, x: m.fit(tf.data.Dataset.from_tensor_slices(x).batch(32), class_weight={0: 1.0}, verbose=0),
        r"class_weight maps labels"),
    "compile_loss": (lambda m, x: m.compile(loss="mse"), r"loss='mse'.*cannot use.*bits/dim"),
    "compile_metrics": (lambda m, x: m.compile(metrics=["mae"]), r"metrics=\['mae'\].*cannot use"),
    "compile_weighted_metrics": (lambda m, x: m.compile(weighted_metrics=["mae"]), r"weighted_metrics"),
    "compile_loss_weights": (lambda m, x: m.compile(loss_weights=[1.0]), r"loss_weights"),
    "empty_generator": (lambda m, x: m.fit((b for b in []), epochs=1, verbose=0), r"generator is empty"),
    "export_onnx": (lambda m, x: m.export("unused_path", format="onnx"), r"tf_saved_model.*format='onnx'"),
    "export_input_signature": (lambda m, x: m.export("unused_path", input_signature=[tf.TensorSpec([None, 2])]),
                               r"no input_signature"),
}


@pytest.mark.parametrize("usage", sorted(REFUSED))
def test_refused_usage(model, moons, usage):
    fn, pattern = REFUSED[usage]
    optimizer, before = model.optimizer, model.optimizer.iterations.numpy()
    with pytest.raises(ValueError, match=pattern):
        fn(model, moons)
    assert model.optimizer is optimizer and model.optimizer.iterations.numpy() == before


def test_evaluate_and_predict(model, moons):
    result = model.evaluate(moons, batch_size=32, return_dict=True, verbose=0)
    per_example = model.predict(moons, batch_size=32, verbose=0)
    assert set(per_example) == {"log_prob", "nll", "bits_per_dim"}
    assert per_example["bits_per_dim"].shape == (N,)
    assert result["bits_per_dim"] == pytest.approx(per_example["bits_per_dim"].mean(), rel=1e-5)
    # evaluate with sample weights: the weighted mean of the per-example figures (numpy)
    w = np.random.default_rng(0).uniform(size=N).astype(np.float32)
    weighted = model.evaluate(moons, sample_weight=w, batch_size=32, return_dict=True, verbose=0)
    expected = np.sum(w * per_example["bits_per_dim"]) / np.sum(w)
    assert weighted["bits_per_dim"] == pytest.approx(expected, rel=1e-5)
    assert weighted["loss"] == pytest.approx(expected, rel=1e-5)
    assert weighted["nll"] == pytest.approx(np.sum(w * per_example["nll"]) / np.sum(w), rel=1e-5)
    assert abs(weighted["bits_per_dim"] - result["bits_per_dim"]) > 1e-3  # the weights mattered
    # and through a dataset of (x, y, sample_weight)
    ds = tf.data.Dataset.from_tensor_slices((moons, np.zeros(N), w)).batch(32)
    assert model.evaluate(ds, return_dict=True, verbose=0)["bits_per_dim"] == pytest.approx(expected, rel=1e-5)


def test_sample_weight_and_class_weight_weight_the_loss(moons):
    # One model, restarted from the same state for every run (weights, optimizer, step: the
    # train-step noise depends on the step only), so the runs differ by their weights alone.
    model = _vector_model(seed=3)
    model.initialize(moons)
    start = [w.copy() for w in model.get_weights()]
    optimizer_start = [v.numpy() for v in model.optimizer.variables]  # step, moments, learning rate

    def run(sample_weight=None, y=None, class_weight=None):
        model.set_weights(start)
        for v, value in zip(model.optimizer.variables, optimizer_start):
            v.assign(value)
        history = model.fit(moons, y, sample_weight=sample_weight, class_weight=class_weight, batch_size=32,
                            epochs=1, verbose=0, shuffle=False)
        return [w.copy() for w in model.get_weights()], history.history["loss"][0]

    # all-zero weights: zero loss, zero gradients, no change (they once gave 5.510401, as all-ones)
    after, loss = run(np.zeros(N, np.float32))
    assert loss == 0.0
    for a, b in zip(start, after):
        np.testing.assert_array_equal(a, b)
    # all-one (and all-two: a weighted mean) weights train exactly as no weights
    plain, plain_loss = run()
    for w in (1.0, 2.0):
        weighted, weighted_loss = run(np.full(N, w, np.float32))
        assert weighted_loss == pytest.approx(plain_loss, rel=1e-6)
        for a, b in zip(plain, weighted):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # class_weight maps labels to weights as Keras does: the same as the equivalent sample_weight
    labels = (moons[:, 1] > 0.25).astype(np.int64)
    by_class, class_loss = run(y=labels, class_weight={0: 0.2, 1: 3.0})
    by_sample, sample_loss = run(np.where(labels == 1, 3.0, 0.2).astype(np.float32))
    assert class_loss == pytest.approx(sample_loss, rel=1e-6)
    for a, b in zip(by_class, by_sample):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(plain, by_class))  # and the weights mattered
    # the logged loss is the weighted mean of the batches' bits/dim (first step: the start weights)
    assert abs(class_loss - plain_loss) > 1e-3


def test_generator_is_not_desynchronised_by_the_first_batch_check(moons):
    model = _vector_model(seed=4)
    drawn = []
    model.fit(_generator(moons, 32, drawn), steps_per_epoch=4, epochs=1, verbose=0)
    # every batch drawn once, none skipped or repeated, and all four trained on
    assert drawn == [0, 1, 2, 3] and int(model.optimizer.iterations.numpy()) == 4


def test_actnorm_initialised_from_the_first_batch_of_each_input_kind(moons):
    fresh = training.FlowModel(VECTOR, n_bits=None)
    fresh.initialize(moons[:32])
    reference = [v.numpy() for v in fresh._actnorm_layers[0].variables]
    for make in (lambda: Batches(moons, 32), lambda: _generator(moons, 32, []),
                 lambda: tf.data.Dataset.from_tensor_slices(moons).batch(32)):
        model = _vector_model(seed=5, optimizer=keras.optimizers.SGD(1e-30))  # init values stay
        model.fit(make(), epochs=1, steps_per_epoch=1, verbose=0)
        for a, b in zip(reference, [v.numpy() for v in model._actnorm_layers[0].variables]):
            np.testing.assert_allclose(a, b, rtol=1e-6)


def test_export_keeps_keras_signature(tmp_path, moons, capsys):
    model = _vector_model(seed=6)
    model.initialize(moons)
    path = model.export(str(tmp_path / "flow"), format="tf_saved_model", verbose=True)
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    assert "signatures: log_prob, sample" in capsys.readouterr().out
    model.export(tmp_path / "quiet", verbose=False, signatures=["log_prob"])  # a pathlib.Path too
    assert capsys.readouterr().out == ""
    loaded = tf.saved_model.load(str(tmp_path / "quiet"))
    np.testing.assert_allclose(loaded.signatures["log_prob"](x=tf.constant(moons[:4]))["log_prob"].numpy(),
                               model.predict(moons[:4], verbose=0)["log_prob"], rtol=1e-5, atol=1e-5)


def test_summary_shows_levels_and_steps_with_their_parameters():
    model = training.FlowModel(GLOW, n_bits=5)
    out = io.StringIO()
    model.summary(print_fn=lambda text: out.write(text))
    text = out.getvalue()
    rows = {line.split()[0]: line for line in text.splitlines() if line.strip() and line[0] != "="}

    def params(name):
        return int(rows[name].split()[-1].replace(",", ""))

    def keras_count(*prefixes):  # the reference: Keras' own weights, by their paths
        return int(sum(np.prod(w.shape) for w in model.weights if w.path.startswith(prefixes)))

    assert params("glow_level0") == model.count_params() == keras_count("")
    assert params("level0_step0") == keras_count("level0_step0_")
    assert params("level1_step0") == keras_count("level1_step0_")
    assert params("glow_level1") == keras_count("level1_", "top_prior")
    assert params("level0_split_prior") == keras_count("level0_split_prior")
    assert "level0_squeeze" in rows and "top_prior" in rows
    assert f"Total params: {model.count_params():,}" in text
    assert "sequential" not in text and "?" not in text
    # expand_nested lists the bijectors inside the steps
    out = io.StringIO()
    model.summary(print_fn=out.write, expand_nested=True, show_trainable=True)
    assert "level0_step0_conv1x1 (InvertibleConv1x1)" in out.getvalue()
    with pytest.raises(ValueError, match="layer_range"):
        model.summary(layer_range=["nope", "glow_level1"])


def test_load_run_returns_a_compiled_model_that_evaluates(tmp_path, moons):
    from tfp_glow import runs

    model = _vector_model(seed=7)
    model.fit(moons, batch_size=32, epochs=1, verbose=0)
    run_dir = str(tmp_path / "run")
    runs.save_run_config(run_dir, model, "moons")
    model.save_weights(os.path.join(run_dir, runs.WEIGHTS))
    loaded = runs.load_run(run_dir)
    assert loaded.compiled
    got = loaded.evaluate(moons, batch_size=64, return_dict=True, verbose=0)
    want = model.evaluate(moons, batch_size=64, return_dict=True, verbose=0)
    assert got["bits_per_dim"] == pytest.approx(want["bits_per_dim"], rel=1e-6)
    assert not runs.load_run(run_dir, compile=False).compiled


MIRRORED_CHILD = r'''
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from tfp_glow import data, models, training
x = data.toy_2d("moons", seed=0)[:64].astype(np.float32)
w = np.zeros(64, np.float32); w[:8] = 1.0; w[8:32] = 0.5   # all the weight in replica 0's half
cfg = models.FlowConfig("realnvp", (2,), dict(hidden=(8,)))
out = {}
for name, strategy in (("single", tf.distribute.get_strategy()),
                       ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        m = training.FlowModel(cfg, n_bits=None)
        m.initialize(x)
        m.compile(optimizer=keras.optimizers.SGD(0.1), warmup_steps=0, clip_norm=None, jit_compile=False)
    h = m.fit(x, sample_weight=w, batch_size=64, epochs=1, verbose=0, shuffle=False)
    out[name] = {"loss": h.history["loss"][0], "weights": [v.tolist() for v in m.get_weights()],
                 "eval": m.evaluate(x, sample_weight=w, batch_size=64, return_dict=True, verbose=0)["bits_per_dim"]}
print(json.dumps(out))
'''


def test_sample_weight_under_two_replicas_is_the_global_weighted_mean():
    # uneven weights across the two replicas' halves of the batch: the update and the logged loss
    # must be those of the one-device step
    import json
    import subprocess
    import sys

    root = str(support.REPO)
    proc = subprocess.run([sys.executable, "-c", MIRRORED_CHILD], cwd=root, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": root})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    single, mirrored = out["single"], out["mirrored"]
    assert mirrored["loss"] == pytest.approx(single["loss"], rel=1e-6)
    assert mirrored["eval"] == pytest.approx(single["eval"], rel=1e-6)
    for a, b in zip(single["weights"], mirrored["weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

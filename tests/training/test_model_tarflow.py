"""`FlowModel` and `ConditionalFlowModel` train TarFlow with `fit`, sample, encode, decode and export
it with the same signatures as Glow; the served numbers equal the live model's."""
import numpy as np
import pytest
import tensorflow as tf
import keras

import tfp_glow as tg
from tfp_glow import serving
from tfp_glow.data import labeled

KWARGS = dict(patch_size=2, width=32, blocks=2, layers_per_block=1, heads=2)
CONFIG = tg.FlowConfig("tarflow", (8, 8, 1), KWARGS)


@pytest.fixture(scope="module")
def trained(digits):
    keras.utils.set_random_seed(0)
    model = tg.FlowModel(CONFIG, n_bits=5)
    model.compile(keras.optimizers.Adam(2e-3), warmup_steps=10, jit_compile=False)
    test = tg.data.make_dataset(digits["test"], 180, shuffle=False)
    before = model.evaluate(test, return_dict=True, verbose=0)["bits_per_dim"] if model.built else None
    history = model.fit(tg.data.make_dataset(digits["train"], 64, seed=0), epochs=2, verbose=0)
    after = model.evaluate(test, return_dict=True, verbose=0)["bits_per_dim"]
    return model, history.history, before, after


def test_fit_lowers_the_bound_and_counts_no_bad_step(trained):
    model, history, _, after = trained
    loss = history["loss"]
    assert np.all(np.isfinite(loss)) and loss[-1] < loss[0] - 0.2
    assert after < 5.0  # 5-bit data: 5 bits/dim is a uniform model
    assert sum(history.get("nonfinite_steps", [0])) == 0


@pytest.mark.parametrize("temperature", [0.0, 0.5, 1.0])
def test_samples_are_finite_images_at_every_temperature(trained, temperature):
    model = trained[0]
    x = model.sample(16, temperature, seed=3).numpy()
    assert x.shape == (16, 8, 8, 1) and np.isfinite(x).all()
    images = model.sample_images(4, temperature, seed=3)
    assert images.dtype == np.uint8 and images.shape == (4, 8, 8, 1)


def test_decode_inverts_encode(trained, digits):
    model = trained[0]
    x = digits["test"][:8]
    z = model.encode(x)
    assert z.shape == (8, 8, 8, 1)
    # the bins' centres of the 5-bit levels, shown as images the same way on both sides
    centres = (tg.data.reduce_bits(tf.constant(x), 5) + 0.5) / 32.0 - 0.5
    np.testing.assert_array_equal(tg.data.to_uint8(model.decode(z), 5).numpy(),
                                  tg.data.to_uint8(centres, 5).numpy())


def test_the_saved_model_has_glows_signatures_and_serves_the_live_numbers(trained, digits, tmp_path):
    model = trained[0]
    glow = tg.FlowModel(tg.FlowConfig("glow", (8, 8, 1), dict(levels=1, steps=1, hidden_channels=4)), n_bits=5)
    assert serving.signature_names(model) == serving.signature_names(glow)
    loaded = tf.saved_model.load(serving.export_saved_model(model, str(tmp_path / "tarflow")))
    assert set(serving.signature_names(model)) <= set(loaded.signatures)
    x = digits["test"][:6]
    served = loaded.signatures["log_prob"](x=tf.constant(x))["bits_per_dim"].numpy()
    live = model.predict(x, verbose=0)
    live = live["bits_per_dim"] if isinstance(live, dict) else live
    np.testing.assert_allclose(served, np.asarray(live).reshape(-1), rtol=1e-4, atol=1e-4)
    rows = loaded.signatures["sample"](temperature=tf.constant([0.7, 1.0]), seed=tf.constant([1, 2]))["images"]
    assert rows.shape == (2, 8, 8, 1)


def test_the_conditional_model_trains_samples_by_class_and_exports():
    x, y, _, k = labeled.load_labeled_split("digits", "train")
    keras.utils.set_random_seed(0)
    model = tg.ConditionalFlowModel(tg.FlowConfig("tarflow", (8, 8, 1), dict(KWARGS, num_classes=k)), n_bits=5)
    model.compile(keras.optimizers.Adam(2e-3), warmup_steps=10, jit_compile=False)
    loss = model.fit(x[:640], y[:640], batch_size=64, epochs=1, verbose=0).history["loss"]
    assert np.isfinite(loss).all()
    samples = model.sample(4, 1.0, seed=0, labels=[0, 1, 2, 3]).numpy()
    assert samples.shape == (4, 8, 8, 1) and np.isfinite(samples).all()
    assert np.asarray(model.classify(x[:8])).shape == (8,)
    assert serving.signature_names(model) == serving.CONDITIONAL_SIGNATURES + ("sample_guided",)

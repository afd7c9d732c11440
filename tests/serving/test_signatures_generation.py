"""tfp_glow.serving.signatures for generation mode: a noise-trained model's served samples are
denoised as `FlowModel.sample`'s are, and a class-conditional TarFlow serves `sample_guided`."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_glow as tg
from tfp_glow import serving

KWARGS = dict(patch_size=2, width=16, blocks=2, layers_per_block=1, heads=2)


def _perturbed(model, seed):
    for v in model.trainable_variables:  # away from the identity: classes and blocks differ
        v.assign(v + 0.2 * tf.random.stateless_normal(v.shape, [seed, 1]))
    return model


@pytest.fixture(scope="module")
def guided(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = _perturbed(tg.ConditionalFlowModel(tg.FlowConfig("tarflow", (8, 8, 1), dict(KWARGS, num_classes=3)),
                                               n_bits=5, noise_sigma=0.1), 1)
    path = serving.export_saved_model(model, str(tmp_path_factory.mktemp("guided") / "m"))
    return model, tf.saved_model.load(path)


def test_a_conditional_tarflow_serves_sample_guided_with_the_live_numbers(guided):
    model, loaded = guided
    assert "sample_guided" in serving.signature_names(model) and "sample_guided" in loaded.signatures
    out = loaded.signatures["sample_guided"](label=tf.constant([0, 2]), temperature=tf.constant([1.0, 0.7]),
                                             seed=tf.constant([5, 6]), guidance=tf.constant(1.5))
    for row, (y, t, s) in enumerate([(0, 1.0, 5), (2, 0.7, 6)]):
        live = model.sample(1, t, seed=s, labels=[y], guidance=1.5).numpy()[0]
        np.testing.assert_allclose(out["x"].numpy()[row], live, rtol=1e-3, atol=1e-3)  # autoregressive: rounding grows
    unguided = loaded.signatures["sample"](label=tf.constant([0]), temperature=tf.constant([1.0]),
                                           seed=tf.constant([5]))["x"].numpy()[0]
    assert np.abs(out["x"].numpy()[0] - unguided).max() > 1e-3


def test_served_samples_of_a_noise_trained_model_are_denoised(guided):
    model, loaded = guided
    served = loaded.signatures["sample"](label=tf.constant([1]), temperature=tf.constant([1.0]),
                                         seed=tf.constant([3]))["x"].numpy()[0]
    np.testing.assert_allclose(served, model.sample(1, 1.0, seed=3, labels=[1]).numpy()[0], rtol=1e-4, atol=1e-4)
    raw = model.sample(1, 1.0, seed=3, labels=[1], denoise=False).numpy()[0]
    assert np.abs(served - raw).max() > 1e-4  # the score step did something


def test_sample_guided_refuses_a_negative_guidance(guided):
    with pytest.raises(tf.errors.InvalidArgumentError, match="guidance >= 0"):
        guided[1].signatures["sample_guided"](label=tf.constant([0]), temperature=tf.constant([1.0]),
                                              seed=tf.constant([1]), guidance=tf.constant(-1.0))


def test_glow_keeps_its_signatures():
    glow = tg.ConditionalFlowModel(tg.FlowConfig("glow", (8, 8, 1), dict(levels=1, steps=1, hidden_channels=4,
                                                                          num_classes=3)), n_bits=5)
    assert serving.signature_names(glow) == serving.CONDITIONAL_SIGNATURES

"""tfp_glow.training.generation: Gaussian noise augmentation, the score-step denoiser and guidance,
against closed forms (a fresh TarFlow is the identity, so its density is the standard normal)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_glow as tg
from tfp_glow.training import generation
import support

TARFLOW = dict(patch_size=2, width=16, blocks=2, layers_per_block=1, heads=2)


def _tarflow(num_classes=0, **kwargs):
    keras.utils.set_random_seed(0)
    cls = tg.ConditionalFlowModel if num_classes else tg.FlowModel
    kw = dict(TARFLOW, num_classes=num_classes) if num_classes else TARFLOW
    return cls(tg.FlowConfig("tarflow", (8, 8, 1), kw), n_bits=5, **kwargs)


def test_training_noise_is_an_independent_gaussian_stream():
    x = tf.zeros((4000, 8))
    seed = tf.constant([3, 9])
    a = generation.add_training_noise(x, 0.1, seed).numpy()
    assert abs(a.mean()) < 3e-3 and abs(a.std() - 0.1) < 2e-3
    np.testing.assert_array_equal(a, generation.add_training_noise(x, 0.1, seed).numpy())
    # not the dequantization noise's own draw from the same seed
    u = tf.random.stateless_normal(x.shape, seed).numpy()
    assert abs(np.corrcoef(a.ravel(), u.ravel())[0, 1]) < 0.05


def test_the_denoiser_is_tweedies_step_on_a_known_density():
    """A fresh TarFlow is the identity (zero-initialised outputs): `log p = N(0, I)`, whose score
    is `-x`, so one step gives `(1 - sigma^2) x`."""
    model = _tarflow()
    x = tf.random.stateless_uniform((6, 8, 8, 1), [1, 2], -0.5, 0.5)
    np.testing.assert_allclose(generation.denoise(model.distribution, x, 0.2, {}).numpy(),
                               (1 - 0.04) * x.numpy(), rtol=1e-5, atol=1e-6)


def test_sample_denoises_exactly_when_trained_with_noise():
    noisy = _tarflow(noise_sigma=0.2)
    raw = noisy.sample(5, 1.0, seed=4, denoise=False)
    np.testing.assert_allclose(noisy.sample(5, 1.0, seed=4).numpy(), (1 - 0.04) * raw.numpy(), rtol=1e-5, atol=1e-6)
    clean = _tarflow()
    np.testing.assert_allclose(clean.sample(5, 1.0, seed=4).numpy(), raw.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="noise_sigma > 0"):
        clean.sample(2, denoise=True)


def test_noise_changes_the_training_batches_but_not_the_reported_figures(digits):
    x = digits["train"][:64]
    test = tg.data.make_dataset(digits["test"][:128], 128, shuffle=False)
    models = []
    for sigma in (0.0, 0.5):
        model = _tarflow(noise_sigma=sigma)
        model.compile(keras.optimizers.SGD(0.0), warmup_steps=0, jit_compile=False)  # lr 0: weights stay put
        models.append((model, model.fit(x, batch_size=64, epochs=1, verbose=0, shuffle=False).history["loss"][0],
                       model.evaluate(test, return_dict=True, verbose=0)["bits_per_dim"]))
    (_, clean_loss, clean_bpd), (_, noisy_loss, noisy_bpd) = models
    # noisy batches under N(0, I): + sigma^2 / 2 nats a dimension, about 0.18 bits
    assert noisy_loss == pytest.approx(clean_loss + 0.25 / 2 / np.log(2), abs=0.03)
    assert noisy_bpd == pytest.approx(clean_bpd, abs=1e-6)  # evaluation: clean data, uniform noise only


def test_noise_sigma_is_saved_and_checked():
    model = _tarflow(noise_sigma=0.05)
    assert tg.FlowModel.from_config(model.get_config()).noise_sigma == 0.05
    for bad in (-0.1, float("nan"), "0.1", True):
        with pytest.raises(ValueError, match="noise_sigma"):
            _tarflow(noise_sigma=bad)


def test_guided_samples_of_a_conditional_tarflow(tmp_path):
    model = _tarflow(num_classes=3)
    for v in model.trainable_variables:  # away from the identity, so classes differ
        v.assign(v + 0.3 * tf.random.stateless_normal(v.shape, [0, 1]))
    plain = model.sample(4, 1.0, seed=2, labels=[0, 1, 2, 0])
    guided = model.sample(4, 1.0, seed=2, labels=[0, 1, 2, 0], guidance=2.0)
    assert np.isfinite(guided.numpy()).all() and np.abs((guided - plain).numpy()).max() > 1e-3
    np.testing.assert_allclose(model.sample(4, 1.0, seed=2, labels=[0, 1, 2, 0], guidance=0.0).numpy(),
                               plain.numpy(), rtol=1e-3, atol=1e-3)
    assert model.sample_images(2, 0.7, seed=1, labels=1, guidance=1.0).dtype == np.uint8


def test_guidance_where_it_cannot_apply_is_a_clear_error():
    with pytest.raises(ValueError, match="class-conditional"):
        _tarflow().sample(2, guidance=1.0)
    glow = tg.ConditionalFlowModel(support.TINY_CONDITIONAL_GLOW, n_bits=5)
    with pytest.raises(ValueError, match="tarflow"):
        glow.sample(2, labels=[0, 1], guidance=1.0)
    with pytest.raises(ValueError, match="finite float >= 0"):
        _tarflow(num_classes=3).sample(2, labels=[0, 1], guidance=-1.0)

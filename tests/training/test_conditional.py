"""Class-conditional models end to end: labelled data, fit(x, y), sample/log_prob with labels,
Bayes-rule classification, and clear errors for bad labels before any step."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_glow import data as data_lib
from tfp_glow.data import labeled
from tfp_glow.bijectors.conditioning import CONDITIONAL_INPUT
from tfp_glow.training.conditional import ConditionalFlowModel, make_flow_model
from tfp_glow.models import FlowConfig
from tfp_glow.training import FlowModel
import support

K = support.NUM_CLASSES
CONFIG = support.TINY_CONDITIONAL_GLOW


@pytest.fixture(scope="module")
def digits():
    x, y, _, k = labeled.load_labeled_split("digits", "train")
    xt, yt, _, _ = labeled.load_labeled_split("digits", "test")
    assert k == K
    return x, y, xt, yt


@pytest.fixture(scope="module")
def trained(digits):
    x, y, _, _ = digits
    keras.utils.set_random_seed(0)
    model = ConditionalFlowModel(CONFIG, n_bits=5)
    model.compile(keras.optimizers.Adam(2e-3), warmup_steps=5)
    model.fit(x[:512], y[:512], batch_size=64, epochs=2, verbose=0, shuffle=False)
    return model


def test_digit_labels_belong_to_their_images():
    from sklearn import datasets as sk_datasets

    sk = sk_datasets.load_digits()
    x, y, _, _ = labeled.load_labeled_split("digits", "test")
    np.testing.assert_array_equal(x, data_lib.load_digits("test"))
    ref = np.floor(sk.images * (255.0 / 16.0) + 0.5).astype(np.uint8)
    for i in range(0, len(x), 37):  # find each image among sklearn's and compare its class
        match = np.flatnonzero((ref == x[i, :, :, 0]).all(axis=(1, 2)))
        assert len(match) >= 1 and y[i] in set(sk.target[match].tolist())


def test_npz_labels_follow_the_held_out_split(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=50)
    x = np.repeat((y * 80)[:, None, None, None], 8, axis=1).repeat(8, axis=2).astype(np.uint8)  # label in pixels
    path = str(tmp_path / "toy.npz")
    np.savez(path, x=x, y=y)
    total = 0
    for split in ("train", "validation", "test"):
        xs, ys, _, k = labeled.load_labeled_split(path, split)
        assert k == 3 and len(xs) == len(ys)
        np.testing.assert_array_equal(xs[:, 0, 0, 0] // 80, ys)
        total += len(xs)
    assert total == 50
    np.savez(path, x=x)
    with pytest.raises(ValueError, match="no labels"):
        labeled.load_labeled_split(path, "train")
    with pytest.raises(ValueError, match="no class labels"):
        labeled.load_labeled_split("photos32", "train")


def test_bayes_classification_matches_an_independent_computation(trained, digits):
    _, _, xt, yt = digits
    xt, yt = xt[:40], yt[:40]
    model = trained
    x_pre = model.preprocess(xt, fixed_noise=True)
    # TFP's public path, one class at a time, with the learned label frequencies
    ll = np.stack([model.distribution.log_prob(x_pre, bijector_kwargs={
        CONDITIONAL_INPUT: tf.one_hot(np.full(len(xt), c), K)}).numpy() for c in range(K)], axis=1)
    prior = np.log((np.bincount(digits[1][:512], minlength=K) + 1.0) / (512 + K))
    np.testing.assert_allclose(model.class_log_prior.numpy(), prior, atol=1e-6)
    want = np.argmax(ll + prior, axis=1)
    np.testing.assert_array_equal(model.classify(xt).numpy(), want)
    result = model.evaluate(xt, yt, batch_size=16, verbose=0, return_dict=True)
    assert result["accuracy"] == pytest.approx(np.mean(want == yt), abs=1e-6)
    bpd = (-ll[np.arange(len(yt)), yt] + 64 * 5 * np.log(2)) / (64 * np.log(2))
    assert result["bits_per_dim"] == pytest.approx(bpd.mean(), rel=1e-5)
    np.testing.assert_allclose(model.log_prob(xt, yt), ll[np.arange(len(yt)), yt], rtol=1e-5, atol=1e-3)
    marginal = np.logaddexp.reduce(ll + prior, axis=1)
    np.testing.assert_allclose(model.marginal_log_prob(xt), marginal, rtol=1e-5, atol=1e-3)
    # without labels, evaluate reports the marginal likelihood
    result = model.evaluate(xt, batch_size=16, verbose=0, return_dict=True)
    assert "accuracy" not in result
    assert result["bits_per_dim"] == pytest.approx(((-marginal + 64 * 5 * np.log(2)) / (64 * np.log(2))).mean(),
                                                   rel=1e-5)


def test_learning_makes_the_label_matter(trained, digits):
    # after two epochs the classifier beats chance by far (10 classes: 0.1)
    _, _, xt, yt = digits
    assert np.mean(trained.classify(xt).numpy() == yt) > 0.3


def test_sample_with_labels(trained):
    images = trained.sample_images(6, temperature=0.7, seed=1, labels=[0, 1, 2, 3, 4, 5])
    assert images.shape == (6, 8, 8, 1) and images.dtype == tf.uint8
    x = trained.sample(4, seed=1, labels=7, level_temperatures=[0.0, 0.0])
    # at T = 0 every sample of a class is the same image: the class's mode path
    np.testing.assert_allclose(x[0], x[3], atol=1e-6)
    y = trained.sample(2, temperature=0.0, seed=1, labels=[2, 7])
    assert np.abs(np.asarray(y[0]) - np.asarray(x[0])).max() > 1e-3 and np.allclose(y[1], x[0], atol=1e-6)


def test_sample_draws_the_latent_as_the_unconditional_model_does(trained):
    """One temperature semantics for both models: a batch of temperatures is a batch of base
    distributions ([n, *T.shape, *event]); `level_temperatures` scales each level."""
    from tfp_glow.analysis import latent

    labels = np.array([3, 8])
    x = trained.sample(2, temperature=[0.5, 1.0], seed=4, labels=labels).numpy()
    assert x.shape == (2, 2, 8, 8, 1)
    # the reference: the stateless draw for the int seed 4 (pair [4, 0]), scaled, decoded with the labels
    eps = tf.random.stateless_normal([2, *trained.latent_shape], seed=[4, 0])
    onehot = tf.one_hot(labels, K)
    for i, t in enumerate([0.5, 1.0]):
        ref = trained.distribution.bijector.forward(t * eps, **{CONDITIONAL_INPUT: onehot}).numpy()
        np.testing.assert_allclose(x[:, i], ref, atol=1e-5)
    per_level = trained.sample(2, seed=4, labels=labels, level_temperatures=[0.0, 1.0]).numpy()
    scale = (latent.level_map(trained) == 1).astype(np.float32)
    ref = trained.distribution.bijector.forward(eps * scale, **{CONDITIONAL_INPUT: onehot}).numpy()
    np.testing.assert_allclose(per_level, ref, atol=1e-5)
    assert trained.sample(0, labels=[]).shape == (0, 8, 8, 1)
    assert trained.sample_images(0, temperature=[0.5, 1.0], labels=[]).shape == (0, 2, 8, 8, 1)
    with pytest.raises(ValueError, match="2 floats"):
        trained.sample(2, labels=labels, level_temperatures=[1.0, 1.0, 1.0])


def test_fit_on_a_dataset_of_image_label_pairs(digits):
    x, y, _, _ = digits
    model = ConditionalFlowModel(CONFIG, n_bits=5)
    model.compile(keras.optimizers.Adam(1e-3))
    ds = tf.data.Dataset.from_tensor_slices((x[:64], y[:64])).batch(32)
    h = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(h.history["loss"][0]) and int(model.optimizer.iterations) == 2
    ds_dict = tf.data.Dataset.from_tensor_slices({"image": x[:32], "label": y[:32]}).batch(32)
    model.fit(ds_dict, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 3


@pytest.fixture(scope="module")
def fresh():
    """One untrained model for the bad-input cases: each must leave it untouched."""
    model = ConditionalFlowModel(CONFIG, n_bits=5)
    model.compile(keras.optimizers.Adam(1e-3))
    return model


@pytest.mark.parametrize("labels, match", [
    (None, "labels are needed"),
    ("out", "out of range"),
    ("neg", "out of range"),
    ("float", "must be integers"),
    ("onehot", r"shape \[N\]"),
    ("short", "labels for"),
])
def test_bad_labels_fail_before_any_step(digits, fresh, labels, match):
    x, y, _, _ = digits
    x, y = x[:64], y[:64].copy()
    bad = {None: None, "out": np.where(np.arange(64) == 3, K, y), "neg": y - 1, "float": y.astype(np.float32),
           "onehot": np.eye(K, dtype=np.int64)[y], "short": y[:10]}[labels]
    model = fresh
    with pytest.raises(ValueError, match=match):
        model.fit(x, bad, batch_size=32, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 0 and not model.is_initialized


def test_other_label_errors(digits, trained, fresh):
    x, y, _, _ = digits
    plain = make_flow_model(support.TINY_GLOW, n_bits=5)
    assert type(plain) is FlowModel
    with pytest.raises(ValueError, match="label_dropout=0.1 needs a class-conditional flow"):
        make_flow_model(support.TINY_GLOW, n_bits=5, label_dropout=0.1)
    with pytest.raises(ValueError, match=r"label_dropout must be a float in \[0, 1\)"):
        make_flow_model(support.TINY_GLOW, n_bits=5, label_dropout=1.5)
    plain.compile(keras.optimizers.Adam(1e-3))
    with pytest.raises(ValueError, match="unconditional"):
        plain.fit(x[:64], y[:64], batch_size=32, verbose=0)
    with pytest.raises(ValueError, match="unconditional"):
        plain.fit(tf.data.Dataset.from_tensor_slices((x[:64], y[:64])).batch(32), verbose=0)
    assert int(plain.optimizer.iterations) == 0
    with pytest.raises(ValueError, match=r"\(image, label\) pairs"):
        fresh.fit(tf.data.Dataset.from_tensor_slices(x[:64]).batch(32), verbose=0)
    assert int(fresh.optimizer.iterations) == 0 and not fresh.is_initialized
    with pytest.raises(ValueError, match="out of range"):
        trained.sample(3, labels=[0, 1, 12])
    with pytest.raises(ValueError, match="labels are needed"):
        trained.log_prob(x[:3], None)
    with pytest.raises(ValueError, match="num_classes"):
        ConditionalFlowModel(support.TINY_GLOW)
    with pytest.raises(ValueError, match="num_classes must be"):
        FlowConfig("glow", (8, 8, 1), dict(levels=2, steps=1, hidden_channels=8, num_classes=1)).build()


def test_evaluate_with_sample_weight(trained, digits):
    _, _, xt, yt = digits
    xt, yt = xt[:32], yt[:32]
    w = np.linspace(0.2, 2.0, len(xt)).astype(np.float32)
    x_pre = trained.preprocess(xt, fixed_noise=True)
    ll = np.stack([trained.distribution.log_prob(x_pre, bijector_kwargs={
        CONDITIONAL_INPUT: tf.one_hot(np.full(len(xt), c), K)}).numpy() for c in range(K)], axis=1)
    bpd = (-ll[np.arange(len(yt)), yt] + 64 * 5 * np.log(2)) / (64 * np.log(2))
    correct = np.argmax(ll + trained.class_log_prior.numpy(), axis=1) == yt
    result = trained.evaluate(xt, yt, sample_weight=w, batch_size=16, verbose=0, return_dict=True)
    assert result["bits_per_dim"] == pytest.approx(np.sum(w * bpd) / np.sum(w), rel=1e-5)
    assert result["accuracy"] == pytest.approx(np.sum(w * correct) / np.sum(w), abs=1e-6)

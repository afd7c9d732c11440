"""The latent toolkit: exact end points, directions computed independently, per-level temperatures,
and the scoring module's AUROC against a numpy reference."""
import numpy as np
import pytest
import tensorflow as tf

from tfp_glow import data as data_lib
from tfp_glow.data import labeled
from tfp_glow.analysis import latent
from tfp_glow.analysis import scoring
from tfp_glow.training.conditional import ConditionalFlowModel
from tfp_glow.models import FlowConfig
from tfp_glow.training import FlowModel
import support


def _perturbed(model, x, y=None, seed=0):
    """Initialised on data, then every weight nudged: a flow that is not the identity."""
    if y is None:
        model.initialize(x[:128])
    else:
        model.initialize(x[:128], labels=y[:128])
    rng = np.random.default_rng(seed)
    for v in model.distribution.trainable_variables:
        v.assign_add(0.05 * rng.standard_normal(v.shape).astype(np.float32))
    return model


@pytest.fixture(scope="module")
def digits():
    x, y, _, _ = labeled.load_labeled_split("digits", "test")
    return x[:120], y[:120]


@pytest.fixture(scope="module")
def plain(digits):
    model = FlowModel(support.TINY_GLOW, n_bits=5)
    return _perturbed(model, digits[0])


@pytest.fixture(scope="module")
def cond(digits):
    model = ConditionalFlowModel(support.TINY_CONDITIONAL_GLOW, n_bits=5)
    return _perturbed(model, digits[0], digits[1], seed=1)


def _public_encode(model, x, y=None):
    """TFP's public inverse of the preprocessed data: the reference latent."""
    x_pre = model.preprocess(x, fixed_noise=True)
    if y is None:
        return model.distribution.bijector.inverse(x_pre).numpy()
    return model.distribution.bijector.inverse(x_pre, conditional_input=tf.one_hot(y, 10)).numpy()


@pytest.mark.parametrize("method", latent.INTERPOLATIONS)
def test_interpolation_end_points_reconstruct_exactly(plain, cond, digits, method):
    x, y = digits
    for model, kw in ((plain, {}), (cond, dict(label_a=int(y[3]), label_b=int(y[8])))):
        out = latent.interpolate(model, x[3], x[8], steps=5, method=method, **kw)
        x_pre = model.preprocess(x[[3, 8]], fixed_noise=True).numpy()
        np.testing.assert_allclose(out["x"][[0, -1]], x_pre, atol=1e-5)
        want = data_lib.to_uint8(x_pre, 5).numpy()  # the images the data are, at the model's depth
        np.testing.assert_array_equal(out["images"][[0, -1]], want)
        assert out["images"].shape == (5, 8, 8, 1)
        # the inner points differ from both ends
        assert np.abs(out["x"][2] - x_pre[0]).max() > 1e-2 and np.abs(out["x"][2] - x_pre[1]).max() > 1e-2


def test_slerp_keeps_the_arc():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(50), rng.standard_normal(50)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    omega = np.arccos(a @ b)
    for t in (0.0, 0.3, 0.5, 1.0):
        p = latent.slerp(a, b, t)
        assert np.linalg.norm(p) == pytest.approx(1.0, abs=1e-9)  # on the sphere
        assert np.arccos(np.clip(p @ a, -1, 1)) == pytest.approx(t * omega, abs=1e-6)  # at angle t * omega
    np.testing.assert_allclose(latent.slerp(a, a, 0.4), a)  # parallel: linear


def test_directions_computed_independently(plain, cond, digits):
    x, y = digits
    z = _public_encode(plain, x)
    want = z[y == 3].mean(axis=0) - z[y != 3].mean(axis=0)
    np.testing.assert_allclose(latent.attribute_direction(plain, x, y == 3), want, atol=1e-4)
    want = z[y == 7].mean(axis=0) - z[y == 1].mean(axis=0)
    d = latent.class_direction(plain, x, y, 1, 7)
    np.testing.assert_allclose(d, want, atol=1e-4)
    # decoded at each strength: the public forward of z + alpha d; alpha = 0 gives the examples back
    out = latent.manipulate(plain, x[:3], d, strengths=(0.0, 0.5, 1.0))
    for j, alpha in enumerate((0.0, 0.5, 1.0)):
        ref = plain.distribution.bijector.forward((z[:3] + alpha * d).astype(np.float32)).numpy()
        np.testing.assert_allclose(out["x"][:, j], ref, atol=1e-4)
    np.testing.assert_allclose(out["x"][:, 0], plain.preprocess(x[:3], fixed_noise=True), atol=1e-5)
    # a conditional model encodes each example with its own label
    zc = _public_encode(cond, x, y)
    np.testing.assert_allclose(latent.attribute_direction(cond, x, y == 3, labels=y),
                               zc[y == 3].mean(axis=0) - zc[y != 3].mean(axis=0), atol=1e-4)
    with pytest.raises(ValueError, match="both"):
        latent.attribute_direction(plain, x, np.ones(len(x), bool))
    with pytest.raises(ValueError, match="unconditional"):
        latent.encode(plain, x, labels=y)
    with pytest.raises(ValueError, match="labels are needed"):
        latent.encode(cond, x)


def test_level_map_matches_the_splits(plain):
    levels = latent.level_map(plain)
    assert latent.num_levels(plain) == 2 and levels.shape == (8, 8, 1)
    assert np.bincount(levels.ravel()).tolist() == [32, 32]
    # the level-0 Split sees squeeze(z): changing only level-0 entries changes only its z_2 half,
    # so the deeper levels' output (its first half of channels) stays as it is
    split = [m for m in plain.distribution.bijector.submodules if type(m).__name__ == "Split"][0]
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2, 8, 8, 1)).astype(np.float32)
    z2 = z + (levels == 0) * rng.standard_normal((2, 8, 8, 1)).astype(np.float32)
    out1, out2 = (split.forward(tf.nn.space_to_depth(t, 2)).numpy() for t in (z, z2))
    np.testing.assert_allclose(out1[..., :2], out2[..., :2], atol=1e-6)
    assert np.abs(out1[..., 2:] - out2[..., 2:]).max() > 1e-2
    # temperatures per level scale exactly those entries
    draw = latent.draw_latent(plain, 3, temperature=[0.0, 1.0], seed=1).numpy()
    assert np.all(draw[:, levels == 0] == 0.0) and np.all(draw[:, levels == 1] != 0.0)
    with pytest.raises(ValueError, match="2 floats"):
        latent.level_temperatures(plain, [0.5, 0.5, 0.5])


def _auroc_pairs(s_in, s_out):
    """Written independently: the fraction of (in, out) pairs ranked right, ties one half."""
    diff = np.asarray(s_out)[:, None] - np.asarray(s_in)[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def test_auroc_against_a_numpy_reference():
    rng = np.random.default_rng(0)
    s_in, s_out = rng.normal(0, 1, 300), rng.normal(0.7, 1, 200)
    assert scoring.auroc(s_in, s_out) == pytest.approx(_auroc_pairs(s_in, s_out), abs=1e-12)
    ties_in, ties_out = rng.integers(0, 5, 100), rng.integers(1, 6, 80)  # many ties
    assert scoring.auroc(ties_in, ties_out) == pytest.approx(_auroc_pairs(ties_in, ties_out), abs=1e-12)
    assert scoring.auroc([0, 1], [2, 3]) == 1.0 and scoring.auroc([2, 3], [0, 1]) == 0.0


def test_scores(plain, digits):
    x, _ = digits
    bpd = scoring.bits_per_dim(plain, x)
    want = plain.predict_step(tf.constant(x))["bits_per_dim"].numpy()
    np.testing.assert_allclose(bpd, want, rtol=1e-6)
    png = scoring.png_bits_per_dim(x[:4], 5)
    levels = data_lib.reduce_bits(tf.constant(x[:4]), 5).numpy().astype(np.uint8)
    for i in range(4):
        assert png[i] == pytest.approx(8 * len(tf.io.encode_png(levels[i], compression=9).numpy()) / 64)
    np.testing.assert_allclose(scoring.typicality_scores([1.0, 3.0], [1.5, 2.5]), [1.0, 1.0])
    test = scoring.typicality_test(np.r_[np.full(16, 2.0), np.full(16, 9.0)], np.random.default_rng(0).normal(2, .1, 500),
                                   batch=8)
    assert test["flagged"].tolist() == [False, False, True, True]
    photos = scoring.as_model_images(data_lib.load_photos32("test", n=4), (8, 8, 1))
    assert photos.shape == (4, 8, 8, 1) and photos.dtype == np.uint8

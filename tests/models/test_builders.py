"""Model builders: structure, shapes, and log_prob against TFP's TransformedDistribution."""
import numpy as np
import pytest
import tensorflow as tf

import tfp_glow as tg
from tfp_glow import models
from registry import randomize

SMALL = {
    "glow": ((8, 8, 1), dict(levels=2, steps=2, hidden_channels=8)),
    "glow_additive": ((8, 8, 2), dict(levels=3, steps=1, hidden_channels=8, coupling="additive", lu=False)),
    "realnvp_image": ((8, 8, 1), dict(levels=2, couplings_per_stage=2, hidden=8, logit_alpha=0.05)),
    "realnvp_vector": ((2,), dict(couplings_per_stage=4, hidden=(8,))),
    "nice_image": ((4, 4, 1), dict(couplings=4, hidden=(8, 8))),
    "nice_vector": ((6,), dict(couplings=3, hidden=(8,))),
    "nsf_vector": ((2,), dict(couplings=3, hidden=(8,), bins=4)),
    "nsf_image": ((4, 4, 1), dict(couplings=2, hidden=(8,), bins=3, mask="alternate")),
    "maf_vector": ((3,), dict(layers=2, hidden=(8,))),
    "maf_image": ((2, 2, 1), dict(layers=2, hidden=(8,), transform="spline", bins=3)),
    "maf_iaf": ((3,), dict(layers=2, hidden=(8,), iaf=True)),
}


def _build(key):
    shape, kwargs = SMALL[key]
    flow = key.split("_")[0]
    return models.FlowConfig(flow, shape, kwargs).build(), shape


@pytest.mark.parametrize("key", sorted(SMALL))
def test_lean_log_prob_matches_tfp_log_prob(key):
    dist, shape = _build(key)
    randomize(dist, scale=0.1)
    x = tf.random.stateless_uniform((5,) + shape, seed=[1, 2], minval=-0.45, maxval=0.45)
    np.testing.assert_allclose(tg.bijectors.log_prob(dist, x), dist.log_prob(x), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("key", sorted(SMALL))
def test_models_round_trip_and_sample_finite(key):
    dist, shape = _build(key)
    randomize(dist, scale=0.1)
    x = tf.random.stateless_uniform((3,) + shape, seed=[3, 4], minval=-0.45, maxval=0.45)
    z = dist.bijector.inverse(x)
    np.testing.assert_allclose(dist.bijector.forward(z), x, atol=1e-4)
    assert np.all(np.isfinite(dist.sample(4, seed=1).numpy()))


def test_glow_matches_the_issue_parameter_budget():
    # L=2, K=4, 400 hidden on 28x28x1: the benchmark configuration (~1.55M parameters)
    dist = models.glow((28, 28, 1), levels=2, steps=4, hidden_channels=400)
    n = models.count_parameters(dist)
    # conv nets: level 1 (2->400->400->4), level 2 (4->400->400->8), 4 steps each
    nets = 4 * ((2 * 9 * 400 + 400) + (400 * 400 + 400) + (400 * 9 * 4 + 4)) \
        + 4 * ((4 * 9 * 400 + 400) + (400 * 400 + 400) + (400 * 9 * 8 + 8))
    steps = 4 * (2 * 4 + 16 + 16 + 4) + 4 * (2 * 8 + 64 + 64 + 8)  # actnorm + LU conv (lower, upper, log_diag)
    split = 2 * 9 * 4 + 4  # zero 3x3 conv from the 2 kept channels to (mean, log-scale) of 2
    top = 2 * 7 * 7 * 8  # learned top prior on [7, 7, 8]
    assert n == nets + steps + split + top == 1547292, n


def test_bad_image_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"divisible by 4.*\[6, 6, 1\]"):
        models.glow((6, 6, 1), levels=2, steps=1, hidden_channels=8)
    with pytest.raises(ValueError, match="expects event shape"):
        models.glow((8, 8), levels=1, steps=1, hidden_channels=8)
    with pytest.raises(ValueError, match="Unknown flow"):
        models.FlowConfig("ffjord", (2,)).build()


def test_glow_channel_split_prior_is_a_per_channel_gaussian():
    """split_prior="channel" (normflows' GlowBase at the split): the factored-out half scores
    under N(mu_c, sigma_c^2) per channel, with mu = w_mu exp(3 v_mu), log sigma =
    5 tanh(w_s exp(3 v_s) / 5); checked against scipy-free numpy on a one-level flow."""
    from tfp_glow.bijectors import Split
    dist = models.glow((4, 4, 1), levels=2, steps=1, hidden_channels=8, split_prior="channel", learn_top=False)
    split = [m for m in dist.bijector.submodules if isinstance(m, Split)][0]
    net = split.conditioner
    assert isinstance(net, tg.networks.ChannelParameters) and net.out_channels == 4  # mean and log-scale of 2 channels
    rng = np.random.default_rng(0)
    w, v = rng.normal(size=4).astype(np.float32), rng.normal(scale=0.1, size=4).astype(np.float32)
    net.w.assign(w)
    net.v.assign(v)
    params = w * np.exp(3 * v)
    mu, log_sigma = params[:2], 5 * np.tanh(params[2:] / 5)
    x = tf.constant(rng.normal(size=(3, 2, 2, 4)).astype(np.float32))  # the split's event [H/2, W/2, 4C]
    z = split.inverse(x)
    ildj = split.inverse_log_det_jacobian(x, event_ndims=3)
    x2 = x.numpy()[..., 2:]
    np.testing.assert_allclose(z.numpy()[..., 2:], (x2 - mu) / np.exp(log_sigma), rtol=1e-5, atol=1e-5)
    inner_ildj = split.inner.inverse_log_det_jacobian(x[..., :2], event_ndims=3) if split.inner is not None else 0.0
    np.testing.assert_allclose(ildj.numpy() - np.asarray(inner_ildj), -4 * log_sigma.sum() * np.ones(3), rtol=1e-5)


def test_scaled_zero_conv_is_openai_glows_conv2d_zeros():
    """y = conv(x) * exp(3 s): against a numpy 1x1 convolution with hand-set weights."""
    layer = tg.networks.ScaledZeroConv2D(2, kernel_size=1, logscale_factor=3.0)
    x = np.random.default_rng(1).normal(size=(2, 3, 3, 4)).astype(np.float32)
    assert not np.any(layer(x).numpy())  # starts at zero: the identity prior
    k = np.random.default_rng(2).normal(size=(1, 1, 4, 2)).astype(np.float32)
    b, s = np.array([0.5, -1.0], np.float32), np.array([0.1, -0.2], np.float32)
    layer.conv.kernel.assign(k)
    layer.conv.bias.assign(b)
    layer.logs.assign(s)
    expected = (x @ k[0, 0] + b) * np.exp(3 * s)
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    dist = models.glow((8, 8, 1), levels=2, steps=1, hidden_channels=8, prior_logscale_factor=3.0)
    nets = [m.conditioner for m in dist.bijector.submodules if isinstance(m, tg.bijectors.Split)]
    assert nets and all(isinstance(n, tg.networks.ScaledZeroConv2D) for n in nets)

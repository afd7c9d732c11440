"""Our bijectors against independent references: TFP's own bijectors, numpy and scipy.

Nothing here compares the code under test with itself: every expected value comes from
`tfb.ScaleMatvecLU`, `tfb.RealNVP`, `tfp.bijectors.glow.Expand`, `np.linalg.slogdet`, a
hand-written numpy layout, numpy batch statistics or `scipy.stats.norm.logpdf`.
"""
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.bijectors import glow as tfp_glow_module

import tfp_glow as tg
from registry import randomize

tfb = tfp.bijectors
tfd = tfp.distributions

ATOL = 2e-5
RTOL = 2e-5


def _normal(shape, seed, loc=0.0, scale=1.0):
    return np.random.default_rng(seed).normal(loc, scale, shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# InvertibleConv1x1 vs tfb.ScaleMatvecLU
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("lu", [True, False], ids=["lu", "plain"])
def test_conv1x1_matches_scale_matvec_lu(lu):
    c = 4
    bij = randomize(tg.InvertibleConv1x1(c, lu=lu, seed=3), seed=11, scale=0.3)
    w = bij.weight().numpy()
    # randomising moved W away from the orthogonal start, so the log-det is not 0
    assert abs(np.linalg.slogdet(w)[1]) > 1e-2
    lower_upper, perm = tf.linalg.lu(tf.constant(w))
    ref = tfb.ScaleMatvecLU(lower_upper, perm)

    z = tf.constant(_normal((2, 3, 3, c), seed=1))
    x = tf.constant(_normal((2, 3, 3, c), seed=2))
    np.testing.assert_allclose(bij.forward(z), ref.forward(z), atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(bij.inverse(x), ref.inverse(x), atol=ATOL, rtol=RTOL)
    # forward really is x = W z at each pixel (numpy, independent of both bijectors)
    np.testing.assert_allclose(bij.forward(z), np.einsum("dc,nhwc->nhwd", w, z.numpy()), atol=ATOL, rtol=RTOL)

    fldj = bij.forward_log_det_jacobian(z, event_ndims=3)
    np.testing.assert_allclose(np.broadcast_to(fldj, (2,)),
                               np.broadcast_to(ref.forward_log_det_jacobian(z, event_ndims=3), (2,)),
                               atol=1e-4, rtol=1e-5)
    ildj = bij.inverse_log_det_jacobian(x, event_ndims=3)
    np.testing.assert_allclose(np.broadcast_to(ildj, (2,)),
                               np.broadcast_to(ref.inverse_log_det_jacobian(x, event_ndims=3), (2,)),
                               atol=1e-4, rtol=1e-5)
    sign, logdet = np.linalg.slogdet(w.astype(np.float64))
    assert sign != 0
    np.testing.assert_allclose(bij.log_abs_det(), logdet, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.broadcast_to(fldj, (2,)), 9 * logdet, atol=1e-4, rtol=1e-5)


def test_conv1x1_lu_matches_its_factors():
    """With LU, W = P L (U + diag(sign * exp(log_diag))) from the raw Keras weights (numpy)."""
    c = 5
    bij = randomize(tg.InvertibleConv1x1(c, lu=True, seed=4), seed=5)
    p = {w.name: w.numpy() for w in bij.parameters_layer.weights}
    lower = np.tril(p["lower"], -1) + np.eye(c)
    upper = np.triu(p["upper"], 1) + np.diag(p["sign"] * np.exp(p["log_diag"]))
    perm = np.eye(c)[p["permutation"]]
    np.testing.assert_allclose(bij.weight(), perm @ lower @ upper, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(bij.inverse_weight(), np.linalg.inv(perm @ lower @ upper), atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# Couplings vs tfb.RealNVP
# ---------------------------------------------------------------------------------------------

def _random_dense(in_dim, out_dim, seed):
    """A small random-weight MLP `[N, in_dim] -> [N, out_dim]` with a non-zero last layer."""
    init = lambda s: keras.initializers.RandomNormal(stddev=0.8, seed=seed + s)  # noqa: E731
    net = keras.Sequential([
        keras.layers.Dense(8, activation="tanh", kernel_initializer=init(0), bias_initializer=init(1)),
        keras.layers.Dense(out_dim, kernel_initializer=init(2), bias_initializer=init(3)),
    ])
    net(tf.zeros((1, in_dim)))
    return net


@pytest.mark.parametrize("d", [5, 6])
@pytest.mark.parametrize("bound", [2.0, 0.7])
def test_affine_coupling_half_tanh_matches_real_nvp(d, bound):
    n_a, n_b = d // 2, d - d // 2
    net = _random_dense(n_a, 2 * n_b, seed=d)
    ours = tg.AffineCoupling((d,), mask="half", parity=0, conditioner=net, scale_fn="tanh", scale_bound=bound)

    def shift_and_log_scale(x0, output_units):
        assert output_units == n_b
        h = net(x0)
        shift, raw = h[..., :n_b], h[..., n_b:]
        return shift, bound * tf.math.tanh(raw / bound)

    ref = tfb.RealNVP(num_masked=n_a, shift_and_log_scale_fn=shift_and_log_scale)
    z = tf.constant(_normal((7, d), seed=1, scale=2.0))
    x = tf.constant(_normal((7, d), seed=2, scale=2.0))
    np.testing.assert_allclose(ours.forward(z), ref.forward(z), atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(ours.inverse(x), ref.inverse(x), atol=ATOL, rtol=RTOL)
    fldj = ours.forward_log_det_jacobian(z, event_ndims=1)
    np.testing.assert_allclose(fldj, ref.forward_log_det_jacobian(z, event_ndims=1), atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(ours.inverse_log_det_jacobian(x, event_ndims=1),
                               ref.inverse_log_det_jacobian(x, event_ndims=1), atol=ATOL, rtol=RTOL)
    # the reference is non-trivial: scales differ from 1 and the bound is respected
    assert np.std(fldj) > 1e-2
    assert np.all(np.abs(fldj) <= n_b * bound + 1e-5)


def test_affine_coupling_sigmoid_parity1_matches_real_nvp_reverse_mask():
    """Glow's bounded sigmoid scale and the swapped mask, against RealNVP with `num_masked < 0`.

    Sampling multiplies by `s = 1 / sigma`, `sigma = s_min + (1 - s_min) sigmoid(h + 2)`.
    """
    d, s_min = 6, 0.05
    net = _random_dense(d - d // 2, 2 * (d // 2), seed=7)
    ours = tg.AffineCoupling((d,), mask="half", parity=1, conditioner=net, scale_fn="sigmoid", scale_min=s_min)
    n_b = d // 2

    def shift_and_log_scale(x0, output_units):
        h = net(x0)
        return h[..., :n_b], -tf.math.log(s_min + (1 - s_min) * tf.math.sigmoid(h[..., n_b:] + 2.0))

    # parity 1: the last D - D//2 entries condition, the first D//2 are transformed
    ref = tfb.RealNVP(num_masked=-(d - d // 2), shift_and_log_scale_fn=shift_and_log_scale)
    z = tf.constant(_normal((5, d), seed=3))
    np.testing.assert_allclose(ours.forward(z), ref.forward(z), atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(ours.inverse(z), ref.inverse(z), atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(ours.forward_log_det_jacobian(z, event_ndims=1),
                               ref.forward_log_det_jacobian(z, event_ndims=1), atol=ATOL, rtol=RTOL)
    # the first D//2 entries move, the rest do not
    moved = np.abs(ours.forward(z).numpy() - z.numpy()) > 1e-6
    assert moved[:, :n_b].all() and not moved[:, n_b:].any()


def _openai_glow_coupling_density_pass(x, h_fn, c_b):
    """openai/glow's `affine_coupling` on the data -> latent pass, in numpy (channel split).

    `z1, z2 = x[..., :C/2], x[..., C/2:]`; `h = NN(z1)`; `shift, scale = h[..., :C_b],
    sigmoid(h[..., C_b:] + 2)`; `z2 = (z2 - shift) * scale` (openai/glow adds the shift, which
    only flips the sign of a learned quantity); `logdet = sum log scale`.
    """
    c_a = x.shape[-1] - c_b
    z1, z2 = x[..., :c_a], x[..., c_a:]
    h = h_fn(z1)
    shift, raw = h[..., :c_b], h[..., c_b:]
    scale = 1.0 / (1.0 + np.exp(-(raw + 2.0)))
    return np.concatenate([z1, (z2 - shift) * scale], axis=-1), np.log(scale).sum(axis=(1, 2, 3))


def test_glow_coupling_contracts_on_the_density_pass_like_openai_glow():
    """Pins the direction: `inverse` (data -> latent) multiplies by sigmoid(h + 2) < 1, as in
    openai/glow and normflows, and `forward` (sampling) divides by it."""
    c = 4
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(3, 3, c // 2, 2 * (c // 2))).astype(np.float32) * 2.0
    b1 = rng.normal(size=(2 * (c // 2),)).astype(np.float32)
    net = keras.layers.Conv2D(2 * (c // 2), 3, padding="same")
    net.build((None, 5, 5, c // 2))
    net.set_weights([w1, b1])
    ours = tg.AffineCoupling((5, 5, c), mask="channel", conditioner=net, scale_min=0.0)

    def h_fn(z1):  # the same convolution, in numpy
        p = np.pad(z1, ((0, 0), (1, 1), (1, 1), (0, 0)))
        out = np.zeros(z1.shape[:3] + (w1.shape[-1],), np.float64)
        for i in range(3):
            for j in range(3):
                out += np.einsum("nhwc,cd->nhwd", p[:, i:i + 5, j:j + 5], w1[i, j])
        return out + b1

    x = _normal((3, 5, 5, c), seed=11, scale=1.5).astype(np.float32)
    z_ref, ildj_ref = _openai_glow_coupling_density_pass(x.astype(np.float64), h_fn, c // 2)
    np.testing.assert_allclose(ours.inverse(x), z_ref, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(ours.inverse_log_det_jacobian(x, event_ndims=3), ildj_ref, atol=1e-3, rtol=1e-4)
    assert np.all(ildj_ref < 0)  # the density pass only contracts
    np.testing.assert_allclose(ours.forward(z_ref.astype(np.float32)), x, atol=1e-4, rtol=1e-4)


def test_glow_coupling_sampling_gain_is_bounded_by_one_over_scale_min():
    """Whatever the network outputs, sampling multiplies `z_b` by at most `1 / s_min`."""
    d, s_min = 4, 0.05
    huge = keras.layers.Dense(4, kernel_initializer=keras.initializers.Constant(-1e4))
    huge.build((None, 2))
    ours = tg.AffineCoupling((d,), mask="half", conditioner=huge, scale_min=s_min)
    z = tf.constant([[1.0, 1.0, 1.0, 1.0], [3.0, -2.0, 1.0, 1.0]])  # h = -1e4 * sum(z_a) << 0
    x = ours.forward(z).numpy()
    assert np.all(np.isfinite(x))
    fldj = ours.forward_log_det_jacobian(z, event_ndims=1).numpy()
    np.testing.assert_allclose(fldj, 2 * np.log(1 / s_min), rtol=1e-5)
    np.testing.assert_allclose(ours.inverse(x), z, atol=1e-3)


@pytest.mark.parametrize("d", [5, 6])
def test_additive_coupling_half_matches_real_nvp_with_none_log_scale(d):
    n_a, n_b = d // 2, d - d // 2
    net = _random_dense(n_a, n_b, seed=20 + d)
    ours = tg.AdditiveCoupling((d,), mask="half", parity=0, conditioner=net)
    # TFP's RealNVP accepts `None` as the log-scale: a NICE (shift-only) coupling
    ref = tfb.RealNVP(num_masked=n_a, shift_and_log_scale_fn=lambda x0, units: (net(x0), None))
    z = tf.constant(_normal((7, d), seed=4))
    x = tf.constant(_normal((7, d), seed=5))
    np.testing.assert_allclose(ours.forward(z), ref.forward(z), atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(ours.inverse(x), ref.inverse(x), atol=ATOL, rtol=RTOL)
    assert np.abs(ours.forward(z).numpy() - z.numpy()).max() > 1e-2  # not the identity
    ref_fldj = np.broadcast_to(ref.forward_log_det_jacobian(z, event_ndims=1), (7,))
    np.testing.assert_array_equal(ref_fldj, 0.0)
    np.testing.assert_allclose(np.broadcast_to(ours.forward_log_det_jacobian(z, event_ndims=1), (7,)), ref_fldj)
    np.testing.assert_allclose(np.broadcast_to(ours.inverse_log_det_jacobian(x, event_ndims=1), (7,)), ref_fldj)


def test_alternate_mask_matches_permuted_real_nvp():
    """`alternate` = RealNVP between two permutations that gather even / odd indices."""
    d = 5
    even, odd = np.arange(0, d, 2), np.arange(1, d, 2)
    net = _random_dense(len(even), 2 * len(odd), seed=31)
    ours = tg.AffineCoupling((d,), mask="alternate", parity=0, conditioner=net, scale_fn="tanh", scale_bound=2.0)
    n_b = len(odd)

    def shift_and_log_scale(x0, output_units):
        h = net(x0)
        return h[..., :n_b], 2.0 * tf.math.tanh(h[..., n_b:] / 2.0)

    perm = np.concatenate([even, odd])  # Permute.forward(x)[..., i] = x[..., perm[i]]
    ref = tfb.Chain([tfb.Invert(tfb.Permute(perm)),
                     tfb.RealNVP(num_masked=len(even), shift_and_log_scale_fn=shift_and_log_scale),
                     tfb.Permute(perm)])
    z = tf.constant(_normal((6, d), seed=6))
    np.testing.assert_allclose(ours.forward(z), ref.forward(z), atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(ours.inverse(z), ref.inverse(z), atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(ours.forward_log_det_jacobian(z, event_ndims=1),
                               ref.forward_log_det_jacobian(z, event_ndims=1), atol=ATOL, rtol=RTOL)


# ---------------------------------------------------------------------------------------------
# Squeeze: pixel order vs numpy and vs TFP's Glow Expand
# ---------------------------------------------------------------------------------------------

N, H, W, C = 2, 4, 6, 3


def _squeeze_reference(x):
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h // 2, w // 2, 4 * c)


def _expand_to_ours_channel_permutation(c):
    """Our channel `(i*2 + j)*C + c` is TFP Expand's channel `c*4 + i*2 + j`.

    Both layouts put the same 2x2 block of pixels at the same output position; they differ
    only in the order of the 4C channels: ours is block-position-major (space_to_depth),
    TFP's `glow.Expand` inverse is input-channel-major.
    """
    perm = np.empty(4 * c, dtype=np.int64)
    for i in range(2):
        for j in range(2):
            for ch in range(c):
                perm[(i * 2 + j) * c + ch] = ch * 4 + i * 2 + j
    return perm


def test_squeeze_pixel_order_matches_numpy_layout():
    x = np.arange(N * H * W * C, dtype=np.float32).reshape(N, H, W, C)
    got = tg.Squeeze().forward(tf.constant(x)).numpy()
    assert got.shape == (N, H // 2, W // 2, 4 * C)
    np.testing.assert_array_equal(got, _squeeze_reference(x))
    # spell one entry out: output (n, h, w, (i*2+j)*C + c) holds input (n, 2h+i, 2w+j, c)
    assert got[1, 1, 2, (1 * 2 + 0) * C + 2] == x[1, 3, 4, 2]
    np.testing.assert_array_equal(tg.Squeeze().inverse(tf.constant(got)).numpy(), x)


def test_squeeze_equals_tfp_expand_inverse_up_to_a_channel_permutation():
    x = np.arange(N * H * W * C, dtype=np.float32).reshape(N, H, W, C)
    expand = tfp_glow_module.Expand(input_shape=[N, H // 2, W // 2, 4 * C])
    tfp_squeezed = expand.inverse(tf.constant(x)).numpy()
    assert tfp_squeezed.shape == (N, H // 2, W // 2, 4 * C)
    ours = tg.Squeeze().forward(tf.constant(x)).numpy()
    perm = _expand_to_ours_channel_permutation(C)
    assert sorted(perm) == list(range(4 * C)) and not np.array_equal(perm, np.arange(4 * C))
    np.testing.assert_array_equal(ours, tfp_squeezed[..., perm])
    # the layouts really differ (so the permutation is needed) ...
    assert not np.array_equal(ours, tfp_squeezed)
    # ... and the unsqueeze directions agree through the same permutation
    y = _normal((N, H // 2, W // 2, 4 * C), seed=3)
    np.testing.assert_array_equal(tg.Squeeze().inverse(tf.constant(y[..., perm])).numpy(),
                                  expand.forward(tf.constant(y)).numpy())


def test_inverted_squeeze_round_trips():
    y = tf.constant(_normal((3, H // 2, W // 2, 4 * C), seed=4))
    unsqueeze = tfb.Invert(tg.Squeeze())
    x = unsqueeze.forward(y)
    assert x.shape == (3, H, W, C)
    np.testing.assert_array_equal(unsqueeze.inverse(x), y)
    np.testing.assert_array_equal(x, tfp_glow_module.Expand(input_shape=[3, H // 2, W // 2, 4 * C]).forward(
        tf.constant(y.numpy()[..., np.argsort(_expand_to_ours_channel_permutation(C))])))
    np.testing.assert_array_equal(unsqueeze.forward_log_det_jacobian(y, event_ndims=3), 0.0)


# ---------------------------------------------------------------------------------------------
# ActNorm data-dependent initialisation
# ---------------------------------------------------------------------------------------------

def _actnorm_chain(c):
    """Data -> latent order: `data_side`, then the 1x1 conv, then `latent_side`."""
    latent_side = tg.ActNorm(c, name="actnorm_latent_side")
    conv = randomize(tg.InvertibleConv1x1(c, seed=2), seed=3, scale=0.5)
    data_side = tg.ActNorm(c, name="actnorm_data_side")
    return tfb.Chain([data_side, conv, latent_side]), data_side, conv, latent_side


def _stats(t):
    t = np.asarray(t, np.float64).reshape(-1, np.shape(t)[-1])
    return t.mean(axis=0), t.var(axis=0)


def test_actnorm_init_normalises_the_data_to_latent_pass():
    c = 3
    chain, data_side, conv, latent_side = _actnorm_chain(c)
    x = _normal((16, 3, 3, c), seed=0, loc=[1.0, -2.0, 3.0], scale=[0.5, 2.0, 4.0])
    assert not data_side.is_initialized and not latent_side.is_initialized
    z = tg.initialize_actnorm(chain, x)
    assert data_side.is_initialized and latent_side.is_initialized
    mean, var = _stats(z)
    np.testing.assert_allclose(mean, 0.0, atol=1e-4)
    np.testing.assert_allclose(var, 1.0, atol=1e-4)
    # z is what the chain computes after the init (not some side value)
    np.testing.assert_allclose(chain.inverse(tf.constant(x)), z, atol=1e-5)
    # the data-side actnorm holds numpy's batch statistics
    m, v = _stats(x)
    np.testing.assert_allclose(data_side.parameters_layer.bias.numpy(), m, atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(data_side.parameters_layer.log_scale.numpy(), 0.5 * np.log(v), atol=1e-4, rtol=1e-5)
    # the latent-side actnorm holds the statistics of what leaves the 1x1 conv (numpy matmul)
    u = ((x - m) / np.sqrt(v)) @ np.linalg.inv(conv.weight().numpy()).T
    m2, v2 = _stats(u)
    np.testing.assert_allclose(latent_side.parameters_layer.bias.numpy(), m2, atol=1e-4)
    np.testing.assert_allclose(latent_side.parameters_layer.log_scale.numpy(), 0.5 * np.log(v2), atol=1e-4)
    # the log-det of the chain is consistent with the init: -H*W*sum(log_scale) of each actnorm
    ildj = chain.inverse_log_det_jacobian(tf.constant(x), event_ndims=3).numpy()
    expected = -9 * (0.5 * np.log(v).sum() + 0.5 * np.log(v2).sum()) - 9 * np.linalg.slogdet(conv.weight().numpy())[1]
    np.testing.assert_allclose(np.broadcast_to(ildj, (16,)), expected, atol=1e-3, rtol=1e-5)


@pytest.mark.parametrize("earlier", ["log_prob", "held_inverse"])
@pytest.mark.parametrize("structure", ["actnorm", "chain"])
def test_initialize_actnorm_after_an_earlier_pass_of_the_same_tensor(structure, earlier):
    """`initialize_actnorm(bij, x)` must initialise even if `x` went through `bij` before.

    TFP caches `inverse` (and the log-dets) by the input tensor object, in eager mode too, for
    as long as that tensor lives. `initialize_actnorm` passes `tf.convert_to_tensor(x)`, i.e.
    the very same tensor, so the bijector returns the cached latent and no ActNorm sees the
    batch: the init is silently skipped (`is_initialized` stays False). A held earlier
    `z = bij.inverse(x)` triggers it every time; an earlier `dist.log_prob(x)` (printing the
    initial loss on the batch then used for the init) or a dropped `bij.inverse(x)` trigger it
    depending on object lifetimes (seen in a plain script, not under pytest).
    """
    c = 3
    if structure == "chain":
        bij, data_side, _, latent_side = _actnorm_chain(c)
        layers = (data_side, latent_side)
    else:
        bij = tg.ActNorm(c)
        layers = (bij,)
    dist = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), [2, 2, c]), bij)
    x = tf.constant(_normal((16, 2, 2, c), seed=12, loc=[1.0, -2.0, 3.0], scale=[0.5, 2.0, 4.0]))
    if earlier == "log_prob":
        assert np.all(np.isfinite(dist.log_prob(x)))
    else:
        z_before = bij.inverse(x)  # noqa: F841  (held on purpose)
    z = tg.initialize_actnorm(bij, x)
    assert all(layer.is_initialized for layer in layers)
    np.testing.assert_allclose(layers[0].parameters_layer.bias.numpy(), _stats(x)[0], atol=1e-4)
    for t in (z, bij.inverse(tf.constant(x.numpy()))):  # what it returns, and a fresh pass
        mean, var = _stats(t)
        np.testing.assert_allclose(mean, 0.0, atol=1e-4)
        np.testing.assert_allclose(var, 1.0, atol=1e-3)


def test_actnorm_init_on_the_forward_side_under_invert():
    """Under `tfb.Invert`, the data enters ActNorm's forward; the init must normalise that side."""
    c = 2
    an = tg.ActNorm(c)
    x = _normal((32, 2, 2, c), seed=9, loc=[4.0, -1.0], scale=[3.0, 0.1])
    z = tg.initialize_actnorm(tfb.Invert(an), x)
    mean, var = _stats(z)
    np.testing.assert_allclose(mean, 0.0, atol=1e-4)
    np.testing.assert_allclose(var, 1.0, atol=1e-3)


def test_actnorm_init_without_force_keeps_an_initialised_layer():
    c = 3
    chain, data_side, _, latent_side = _actnorm_chain(c)
    x1 = _normal((16, 2, 2, c), seed=1, loc=2.0, scale=3.0)
    x2 = _normal((16, 2, 2, c), seed=2, loc=-5.0, scale=0.2)
    tg.initialize_actnorm(chain, x1)
    before = [v.numpy().copy() for v in chain.trainable_variables]
    tg.initialize_actnorm(chain, x2)
    for b, v in zip(before, chain.trainable_variables):
        np.testing.assert_array_equal(v.numpy(), b)
    # a layer added later (not initialised) is initialised by the next call, the others not
    fresh = tg.ActNorm(c, name="fresh")
    chain2 = tfb.Chain([fresh, chain])
    tg.initialize_actnorm(chain2, x2)
    assert fresh.is_initialized
    np.testing.assert_allclose(fresh.parameters_layer.bias.numpy(), _stats(x2)[0], atol=1e-4)
    for b, v in zip(before, chain.trainable_variables):
        np.testing.assert_array_equal(v.numpy(), b)
    # with force, the layers follow the new batch
    tg.initialize_actnorm(chain, x2, force=True)
    m, v = _stats(x2)
    np.testing.assert_allclose(data_side.parameters_layer.bias.numpy(), m, atol=1e-4)
    np.testing.assert_allclose(data_side.parameters_layer.log_scale.numpy(), 0.5 * np.log(v), atol=1e-4)
    # outside the init step, passing data never touches the parameters
    snap = [w.numpy().copy() for w in chain.trainable_variables]
    chain.inverse(tf.constant(x1))
    chain.forward(tf.constant(x1))
    for b, w in zip(snap, chain.trainable_variables):
        np.testing.assert_array_equal(w.numpy(), b)


def test_actnorm_init_of_an_exactly_representable_constant_channel():
    c = 3
    chain, data_side, _, latent_side = _actnorm_chain(c)
    x = _normal((16, 3, 3, c), seed=3, scale=2.0)
    x[..., 1] = 5.0  # a constant channel whose float32 mean has no rounding error
    z = tg.initialize_actnorm(chain, x).numpy()
    assert np.all(np.isfinite(z))
    for v in chain.trainable_variables:
        assert np.all(np.isfinite(v.numpy())), v.name
    assert data_side.parameters_layer.log_scale.numpy()[1] == 0.0
    assert data_side.parameters_layer.bias.numpy()[1] == 5.0
    # an entirely constant batch (2.0, exact in float32): the data-side actnorm keeps scale 1 and
    # nothing downstream (the conv mixes it into constant channels) becomes NaN or infinite
    chain_b, ds, _, _ = _actnorm_chain(c)
    zb = tg.initialize_actnorm(chain_b, np.full((8, 2, 2, c), 2.0, np.float32)).numpy()
    assert np.all(np.isfinite(zb))
    np.testing.assert_array_equal(ds.parameters_layer.log_scale.numpy(), 0.0)
    for v in chain_b.trainable_variables:
        assert np.all(np.isfinite(v.numpy())), v.name


@pytest.mark.parametrize("value", [0.1, 0.7, 123.456])
def test_actnorm_init_of_a_constant_channel_keeps_log_scale_zero(value):
    """A zero-variance channel must keep `log_scale = 0` (ActNorm's docstring, docs/design.md).

    A float32 constant like 0.1 is a zero-variance channel, but `tf.nn.moments` returns a
    variance of ~1e-15 from the rounding of the mean; the absolute threshold `tiny ** 0.5`
    (~1e-19) treats that as real spread and sets `log_scale ~ -16.5`, i.e. a scale of ~1e7 in
    the data -> latent direction (and +16.5 * H * W in the log-likelihood).
    """
    c = 2
    an = tg.ActNorm(c)
    x = _normal((8, 3, 3, c), seed=4)
    x[..., 0] = value
    tg.initialize_actnorm(an, x)
    log_scale = an.parameters_layer.log_scale.numpy()
    assert np.all(np.isfinite(log_scale))
    np.testing.assert_allclose(log_scale[0], 0.0, atol=1e-3)
    np.testing.assert_allclose(log_scale[1], 0.5 * np.log(_stats(x)[1][1]), atol=1e-4)
    # a new batch whose constant channel moved a little stays a little away from 0 in latent space
    z = an.inverse(tf.constant(np.full((1, 3, 3, c), value + 0.01, np.float32))).numpy()
    assert np.abs(z[..., 0]).max() < 1.0


_MIRRORED_CHILD = textwrap.dedent("""
    import json, os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import tfp_glow as tg
    x = np.load(os.environ["ACTNORM_BATCH"])
    c = x.shape[-1]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        data_side = tg.ActNorm(c, name="data_side")
        conv = tg.InvertibleConv1x1(c, lu=True, seed=2)
        latent_side = tg.ActNorm(c, name="latent_side")
        chain = tfp.bijectors.Chain([data_side, conv, latent_side])  # data side first in inverse
    tg.initialize_actnorm(chain, x)  # cross-replica context, eagerly
    out = {"num_replicas": strategy.num_replicas_in_sync, "weight": conv.weight().numpy().tolist()}
    for an in (data_side, latent_side):
        layer = an.parameters_layer
        for name in ("log_scale", "bias", "initialized"):
            local = strategy.experimental_local_results(getattr(layer, name).value)
            out[f"{an.name}/{name}"] = [t.numpy().tolist() for t in local]
            out[f"{an.name}/{name}/devices"] = [t.device for t in local]
    print("RESULT" + json.dumps(out))
""")


def test_actnorm_init_is_identical_on_every_replica_of_a_mirrored_strategy(tmp_path):
    x = _normal((16, 2, 2, 3), seed=8, loc=[1.0, -2.0, 3.0], scale=[0.5, 2.0, 1.5])
    path = tmp_path / "batch.npy"
    np.save(path, x)
    env = dict(os.environ, ACTNORM_BATCH=str(path), PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(tg.__file__))), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", _MIRRORED_CHILD], capture_output=True, text=True, env=env,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = json.loads(line[-1][len("RESULT"):])
    assert out["num_replicas"] == 2
    # numpy reference: the batch statistics entering each actnorm on the data -> latent pass
    m, v = _stats(x)
    u = ((x - m) / np.sqrt(v)) @ np.linalg.inv(np.asarray(out["weight"])).T
    m2, v2 = _stats(u)
    expected = {"data_side/log_scale": 0.5 * np.log(v), "data_side/bias": m, "data_side/initialized": 1.0,
                "latent_side/log_scale": 0.5 * np.log(v2), "latent_side/bias": m2, "latent_side/initialized": 1.0}
    for name, want in expected.items():
        per_replica = np.asarray(out[name])
        assert per_replica.shape[0] == 2, name
        assert len(set(out[name + "/devices"])) == 2, out[name + "/devices"]  # two distinct devices
        np.testing.assert_array_equal(per_replica[0], per_replica[1], err_msg=name)  # bit for bit
        np.testing.assert_allclose(per_replica[0], want, atol=1e-4, rtol=1e-5, err_msg=name)


# ---------------------------------------------------------------------------------------------
# Split / LearnedPrior: Glow's split2d density vs scipy
# ---------------------------------------------------------------------------------------------

def _split_reference_log_prob(split, x, bound, x1_log_density):
    c = x.shape[-1]
    x1, x2 = x[..., : c // 2], x[..., c // 2:]
    raw = np.asarray(split.conditioner(tf.constant(x1)), np.float64)
    mu, raw_log_sigma = raw[..., : c // 2], raw[..., c // 2:]
    log_sigma = bound * np.tanh(raw_log_sigma / bound)
    lp2 = scipy.stats.norm.logpdf(x2, loc=mu, scale=np.exp(log_sigma)).sum(axis=(1, 2, 3))
    return x1_log_density(x1) + lp2


@pytest.mark.parametrize("bound", [5.0, 0.8])
def test_split_density_is_glow_split2d(bound):
    hh, ww, c = 3, 2, 4
    split = randomize(tg.Split((hh, ww, c), log_scale_bound=bound), seed=5, scale=1.0)
    dist = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), [hh, ww, c]), split)
    x = _normal((5, hh, ww, c), seed=6, scale=1.5)
    expected = _split_reference_log_prob(
        split, x, bound, lambda x1: scipy.stats.norm.logpdf(x1).sum(axis=(1, 2, 3)))
    np.testing.assert_allclose(dist.log_prob(tf.constant(x)), expected, atol=1e-3, rtol=1e-5)
    # the conditioner matters: the density is not the standard normal's
    assert np.abs(expected - scipy.stats.norm.logpdf(x).sum(axis=(1, 2, 3))).min() > 1e-2


def test_split_with_learned_prior_inner_density():
    hh, ww, c = 2, 2, 6
    bound_split, bound_prior = 5.0, 1.2
    prior = tg.LearnedPrior((hh, ww, c // 2), log_scale_bound=bound_prior)
    split = tg.Split((hh, ww, c), inner=prior, log_scale_bound=bound_split)
    randomize(split, seed=7, scale=1.0)
    dist = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), [hh, ww, c]), split)
    x = _normal((4, hh, ww, c), seed=8)

    mean = prior.parameters_layer.mean.numpy().astype(np.float64)
    raw = prior.parameters_layer.log_scale.numpy().astype(np.float64)
    sigma = np.exp(bound_prior * np.tanh(raw / bound_prior))
    assert np.abs(mean).max() > 0.1 and np.abs(np.log(sigma)).max() > 0.1  # randomised away from N(0, 1)
    expected = _split_reference_log_prob(
        split, x, bound_split,
        lambda x1: scipy.stats.norm.logpdf(x1, loc=mean, scale=sigma).sum(axis=(1, 2, 3)))
    np.testing.assert_allclose(dist.log_prob(tf.constant(x)), expected, atol=1e-3, rtol=1e-5)
    # sampling goes through the same prior: x1 of many samples has the prior's mean / std
    n = 4000
    s = dist.sample(n, seed=(1, 2)).numpy()[..., : c // 2]  # stateless seed: deterministic
    assert np.all(np.abs(s.mean(axis=0) - mean) < 5 * sigma / np.sqrt(n))
    np.testing.assert_allclose(s.std(axis=0), sigma, rtol=0.1)


def test_learned_prior_alone_is_a_diagonal_gaussian():
    ev = (2, 3)
    prior = randomize(tg.LearnedPrior(ev, log_scale_bound=5.0), seed=9, scale=0.7)
    dist = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), list(ev)), prior)
    mean = prior.parameters_layer.mean.numpy()
    sigma = np.exp(5.0 * np.tanh(prior.parameters_layer.log_scale.numpy() / 5.0))
    x = _normal((3,) + ev, seed=10)
    np.testing.assert_allclose(dist.log_prob(tf.constant(x)),
                               scipy.stats.norm.logpdf(x, mean, sigma).sum(axis=(1, 2)), atol=1e-4, rtol=1e-5)

"""Conditioning through TFP kwargs: a `conditional_input` reaches the log-det and the priors
through our Chain, tfb.Invert, Split and the lean walk.

Each container's result is checked against a hand-built reference: the same sub-bijectors
(their Keras layers) composed by hand with the formulas written out here, or numpy.
"""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow.bijectors import AffineCoupling, Chain, LearnedPrior, Split, Squeeze, walk
from tfp_glow.bijectors.conditioning import CONDITIONAL_INPUT, is_conditional, mean_class_context

tfb, tfd = tfp.bijectors, tfp.distributions
K = 3


def _randomize(bijector, seed, scale=0.3):
    """Random weights everywhere (zero-initialised layers would hide the context)."""
    rng = np.random.default_rng(seed)
    for v in bijector.trainable_variables:
        v.assign(scale * rng.standard_normal(v.shape).astype(np.float32))


def _onehot(labels):
    return tf.one_hot(labels, K)


def _coupling_by_hand(coupling, x, c, inverse):
    """An affine coupling on a channel mask, written out: h = NN([x_a, c]); tanh scale."""
    xa, xb = np.split(np.asarray(x), 2, axis=-1)
    cc = np.broadcast_to(np.asarray(c)[:, None, None, :], xa.shape[:-1] + (K,)) if xa.ndim == 4 else np.asarray(c)
    h = coupling.conditioner(tf.constant(np.concatenate([xa, cc], axis=-1))).numpy()
    shift, raw = np.split(h, 2, axis=-1)
    log_s = 2.0 * np.tanh(raw / 2.0)
    yb = (xb - shift) * np.exp(-log_s) if inverse else xb * np.exp(log_s) + shift
    ldj = log_s.reshape(len(x), -1).sum(-1)
    return np.concatenate([xa, yb], axis=-1), (-ldj if inverse else ldj)


def _prior_by_hand(prior, t, c):
    """LearnedPrior's (mu, log sigma) with openai/glow's ycond offset, per channel."""
    proj = prior._context_projection
    h = np.asarray(c) @ proj.kernel.numpy() + proj.bias.numpy()  # [N, 2C]
    d_mean, d_raw = np.split(h[:, None, None, :], 2, axis=-1)
    mean = prior._mean.numpy() + d_mean
    log_sigma = 5.0 * np.tanh((prior._raw_log_scale.numpy() + d_raw) / 5.0)
    return mean, log_sigma


def _split_prior_by_hand(split, x1, c):
    h = split.conditioner(tf.constant(x1)).numpy()
    proj = split._context_projection
    h = h + (np.asarray(c) @ proj.kernel.numpy() + proj.bias.numpy())[:, None, None, :]
    mean, raw = np.split(h, 2, axis=-1)
    return mean, 5.0 * np.tanh(raw / 5.0)


def _s2d(x):
    return tf.nn.space_to_depth(x, 2).numpy()


@pytest.fixture(scope="module")
def flow():
    """data -> latent: coupling on [4,4,2]... squeeze -> coupling -> split(inner: coupling, top prior) -> unsqueeze."""
    tf.random.set_seed(0)
    outer = AffineCoupling((2, 2, 8), mask="channel", hidden=8, scale_fn="tanh", name="outer", context_dim=K)
    inner_coupling = AffineCoupling((2, 2, 4), mask="channel", hidden=8, scale_fn="tanh", name="inner",
                                    context_dim=K)
    top = LearnedPrior((2, 2, 4), name="top", context_dim=K)
    inner = Chain([inner_coupling, top], name="inner_chain")
    split = Split((2, 2, 8), inner=inner, name="split", context_dim=K)
    chain = Chain([tfb.Invert(Squeeze()), outer, split, Squeeze()], name="flow")
    for i, b in enumerate((outer, inner_coupling, top, split)):
        _randomize(b, i)
    return dict(chain=chain, outer=outer, inner_coupling=inner_coupling, top=top, split=split)


def _inverse_by_hand(parts, x, c):
    """The flow's data -> latent pass and its log-det, composed by hand."""
    s = _s2d(x)  # data -> latent squeezes first
    s, ldj = _coupling_by_hand(parts["outer"], s, c, inverse=True)
    x1, x2 = np.split(s, 2, axis=-1)
    mean, log_sigma = _split_prior_by_hand(parts["split"], x1, c)
    z2 = (x2 - mean) * np.exp(-log_sigma)
    ldj = ldj - log_sigma.reshape(len(x), -1).sum(-1)
    t, l_in = _coupling_by_hand(parts["inner_coupling"], x1, c, inverse=True)
    m_top, ls_top = _prior_by_hand(parts["top"], t, c)
    z1 = (t - m_top) * np.exp(-ls_top)
    ldj = ldj + l_in - np.broadcast_to(ls_top, t.shape).reshape(len(x), -1).sum(-1)
    z = tf.nn.depth_to_space(np.concatenate([z1, z2], axis=-1), 2).numpy()
    return z, ldj


def _data(n=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4, 4, 2)).astype(np.float32)
    labels = rng.integers(0, K, size=n)
    return x, labels


def test_squeeze_direction_of_the_reference():
    # the hand-built reference squeezes on the data -> latent pass (the chain's inverse), as the
    # chain's first member tfb.Invert(Squeeze()) does there
    x, _ = _data()
    np.testing.assert_array_equal(tfb.Invert(Squeeze()).inverse(x).numpy(), _s2d(x))


def test_conditioning_reaches_log_det_and_priors_through_every_container(flow):
    chain = flow["chain"]
    assert is_conditional(chain) and is_conditional(tfb.Invert(chain))
    x, labels = _data()
    c = _onehot(labels)
    z_ref, ildj_ref = _inverse_by_hand(flow, x, c.numpy())
    # the context matters: another label gives another latent and log-det
    z_other, ildj_other = _inverse_by_hand(flow, x, _onehot((labels + 1) % K).numpy())
    assert np.abs(ildj_other - ildj_ref).min() > 1e-3 and np.abs(z_other - z_ref).max() > 1e-2

    # our Chain through TFP's public methods (and tfb.Invert, Split inside)
    np.testing.assert_allclose(chain.inverse(x, conditional_input=c), z_ref, atol=1e-4)
    np.testing.assert_allclose(chain.inverse_log_det_jacobian(x, 3, conditional_input=c), ildj_ref, atol=1e-3)
    # tfb.Invert around the whole chain
    inv = tfb.Invert(chain)
    np.testing.assert_allclose(inv.forward(x, conditional_input=c), z_ref, atol=1e-4)
    np.testing.assert_allclose(inv.forward_log_det_jacobian(x, 3, conditional_input=c), ildj_ref, atol=1e-3)
    # the lean walk
    z_w, ildj_w = walk.inverse_and_log_det(chain, tf.constant(x), 3, conditional_input=c)
    np.testing.assert_allclose(z_w, z_ref, atol=1e-4)
    np.testing.assert_allclose(ildj_w, ildj_ref, atol=1e-3)
    # and back: forward of the reference latent returns the data, fldj = -ildj
    x_back, fldj = walk.forward_and_log_det(chain, tf.constant(z_ref), 3, conditional_input=c)
    np.testing.assert_allclose(x_back, x, atol=1e-4)
    np.testing.assert_allclose(fldj, -ildj_ref, atol=1e-3)


def test_distribution_log_prob_and_sample_with_bijector_kwargs(flow):
    chain = flow["chain"]
    dist = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), [4, 4, 2]), chain)
    x, labels = _data(seed=1)
    c = _onehot(labels)
    z_ref, ildj_ref = _inverse_by_hand(flow, x, c.numpy())
    base = -0.5 * (z_ref ** 2).reshape(len(x), -1).sum(-1) - 0.5 * 32 * np.log(2 * np.pi)
    want = base + ildj_ref
    np.testing.assert_allclose(dist.log_prob(x, bijector_kwargs={CONDITIONAL_INPUT: c}), want, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(walk.log_prob(dist, tf.constant(x), conditional_input=c), want, rtol=1e-5, atol=1e-3)
    # under tf.function with an unknown batch size
    f = tf.function(lambda x, c: walk.log_prob(dist, x, conditional_input=c),
                    input_signature=[tf.TensorSpec([None, 4, 4, 2]), tf.TensorSpec([None, K])])
    np.testing.assert_allclose(f(x, c), want, rtol=1e-5, atol=1e-3)

    # sample(n, bijector_kwargs): the same base draw pushed forward by hand with the same labels
    n = len(x)
    s = dist.sample(n, seed=(7, 1), bijector_kwargs={CONDITIONAL_INPUT: c})  # stateless seed
    eps = dist.distribution.sample(n, seed=(7, 1))
    x_hand = walk.forward_and_log_det(chain, eps, 3, conditional_input=c)[0]
    np.testing.assert_allclose(s, x_hand, atol=1e-4)
    # and the samples round-trip to the hand-built latent of those same samples
    np.testing.assert_allclose(_inverse_by_hand(flow, s.numpy(), c.numpy())[0], eps, atol=1e-3)


def test_tfp_routing_by_name_still_works():
    tf.random.set_seed(1)
    a = AffineCoupling((4,), mask="half", hidden=(8,), scale_fn="tanh", name="a", context_dim=K)
    b = AffineCoupling((4,), mask="half", parity=1, hidden=(8,), scale_fn="tanh", name="b", context_dim=K)
    _randomize(a, 3), _randomize(b, 4)
    chain = Chain([a, b])
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    ca, cb = _onehot([0, 1, 2, 0, 1, 2]), _onehot([2, 2, 1, 1, 0, 0])
    want = a.inverse(x, conditional_input=ca)
    want = b.inverse(want, conditional_input=cb)
    got = chain.inverse(x, a={CONDITIONAL_INPUT: ca}, b={CONDITIONAL_INPUT: cb})
    np.testing.assert_allclose(got, want, atol=1e-5)
    # a by-name value wins over the chain-wide one
    got = chain.inverse(x, conditional_input=cb, a={CONDITIONAL_INPUT: ca})
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_vector_prior_and_coupling_by_numpy():
    tf.random.set_seed(2)
    prior = LearnedPrior((3,), context_dim=K)
    _randomize(prior, 5)
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    c = _onehot([0, 1, 2, 1]).numpy()
    proj = prior._context_projection
    h = c @ proj.kernel.numpy() + proj.bias.numpy()
    mean = prior._mean.numpy() + h[:, :3]
    log_sigma = 5.0 * np.tanh((prior._raw_log_scale.numpy() + h[:, 3:]) / 5.0)  # the bound, in numpy
    np.testing.assert_allclose(prior.inverse(x, conditional_input=c), (x - mean) * np.exp(-log_sigma), atol=1e-5)
    np.testing.assert_allclose(prior.inverse_log_det_jacobian(x, 1, conditional_input=c), -log_sigma.sum(-1),
                               atol=1e-5)


def test_gradients_reach_the_context_layers(flow):
    chain = flow["chain"]
    x, labels = _data()
    with tf.GradientTape() as tape:
        z, ildj = walk.inverse_and_log_det(chain, tf.constant(x), 3, conditional_input=_onehot(labels))
        loss = tf.reduce_sum(z ** 2) - tf.reduce_sum(ildj)
    names = [v.path if hasattr(v, "path") else v.name for v in chain.trainable_variables]
    grads = tape.gradient(loss, chain.trainable_variables)
    ctx = [n for n, g in zip(names, grads) if "context" in n]
    assert len(ctx) == 4  # kernel and bias of the split's and the top prior's projections
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


def test_bad_context_is_a_clear_error(flow):
    chain = flow["chain"]
    x, labels = _data()
    with pytest.raises(ValueError, match="needs `conditional_input`"):
        chain.inverse(x)
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 3\]"):
        chain.inverse(x, conditional_input=tf.zeros([5, 4]))
    with pytest.raises(ValueError, match="float tensor"):
        chain.inverse(x, conditional_input=tf.constant(labels))
    plain = AffineCoupling((4,), mask="half", hidden=(8,))
    with pytest.raises(ValueError, match="not conditional"):
        plain.inverse(np.zeros((2, 4), np.float32), conditional_input=tf.zeros([2, K]))


@pytest.mark.parametrize("kind", ["coupling_vector", "coupling_checkerboard", "split"])
def test_log_det_equals_the_autodiff_jacobian_with_a_context(kind):
    """For a fixed context the bijector is an ordinary bijection: its log-det is slogdet of the
    autodiff Jacobian (float64)."""
    tf.random.set_seed(3)
    dt = tf.float64
    if kind == "coupling_vector":
        b, shape = AffineCoupling((4,), mask="half", hidden=(8,), dtype=dt, context_dim=K), (4,)
    elif kind == "coupling_checkerboard":
        b, shape = AffineCoupling((2, 2, 2), mask="checkerboard", hidden=4, dtype=dt, context_dim=K), (2, 2, 2)
    else:
        inner = LearnedPrior((2, 2, 2), dtype=dt, context_dim=K)
        b, shape = Split((2, 2, 4), inner=inner, dtype=dt, context_dim=K), (2, 2, 4)
    _randomize(b, 7)
    z = tf.constant(np.random.default_rng(0).standard_normal((3,) + shape), dt)
    c = tf.one_hot([0, 2, 1], K, dtype=dt)
    d = int(np.prod(shape))
    with tf.GradientTape() as tape:
        tape.watch(z)
        x = tf.reshape(b.forward(z, conditional_input=c), [3, d])
    jac = tape.batch_jacobian(x, z)
    _, logdet = np.linalg.slogdet(tf.reshape(jac, [3, d, d]).numpy())
    np.testing.assert_allclose(b.forward_log_det_jacobian(z, len(shape), conditional_input=c), logdet, atol=1e-8)
    np.testing.assert_allclose(b.inverse(x.numpy().reshape((3,) + shape), conditional_input=c), z, atol=1e-8)


def test_mean_class_context_is_the_average_of_the_one_hot_labels():
    k = 5
    labels = tf.one_hot([0, 3, 4], k)
    mean = mean_class_context(labels).numpy()
    np.testing.assert_allclose(mean, np.tile(np.eye(k).mean(axis=0), (3, 1)), rtol=1e-7)
    assert mean_class_context(labels, tf.float64).dtype == tf.float64
    unknown_batch = tf.function(lambda c: mean_class_context(c)).get_concrete_function(
        tf.TensorSpec([None, k], tf.float32))
    assert unknown_batch.output_shapes.as_list() == [None, k]

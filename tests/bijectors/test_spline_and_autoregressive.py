"""Neural spline couplings and masked autoregressive flows against TFP's own bijectors
(`tfb.RationalQuadraticSpline`, `tfb.RealNVP`, `tfb.MaskedAutoregressiveFlow`) and autodiff.
The generic properties (round trips, log-det vs autodiff, XLA, SavedModel) are in the registry
suite; here: the references, the tails, the masks and the bad input."""
import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_glow as tg
from tfp_glow.bijectors.autoregressive import MADE, made_masks
from tfp_glow.bijectors.spline import rational_quadratic_spline, spline_params
from registry import randomize

tfb = tfp.bijectors


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_spline_matches_tfp_rational_quadratic_spline_both_ways():
    k, bound = 6, 2.5
    raw = tf.constant(_rng().standard_normal((7, 3, 3 * k - 1)) * 2.0)
    widths, heights, slopes = spline_params(raw, k, bound)
    ref = tfb.RationalQuadraticSpline(widths, heights, slopes, range_min=-bound)
    x = tf.constant(_rng(1).uniform(-4.0, 4.0, (7, 3)))  # inside and outside [-B, B]
    y, log_d = rational_quadratic_spline(x, widths, heights, slopes, bound)
    np.testing.assert_allclose(y, ref.forward(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(log_d, ref.forward_log_det_jacobian(x, event_ndims=0), rtol=1e-10, atol=1e-10)
    back, log_di = rational_quadratic_spline(y, widths, heights, slopes, bound, inverse=True)
    np.testing.assert_allclose(back, ref.inverse(y), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(back, x, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(log_di, ref.inverse_log_det_jacobian(y, event_ndims=0), rtol=1e-9, atol=1e-9)


def test_zero_raw_outputs_are_the_identity():
    raw = tf.zeros((4, 2, 3 * 5 - 1))
    x = tf.constant(_rng().uniform(-3, 3, (4, 2)).astype(np.float32))
    y, log_d = rational_quadratic_spline(x, *spline_params(raw, 5, 2.0), 2.0)
    np.testing.assert_allclose(y, x, atol=1e-6)
    np.testing.assert_allclose(log_d, 0.0, atol=1e-6)
    coupling = tg.SplineCoupling((6,), "half", hidden=(8,))  # zero-initialised conditioner
    np.testing.assert_allclose(coupling.forward(tf.constant(x[:, :1] * np.ones((1, 6), np.float32))),
                               x[:, :1] * np.ones((1, 6)), atol=1e-5)


@pytest.mark.parametrize("mask,parity", [("half", 0), ("half", 1), ("alternate", 0)])
def test_spline_coupling_matches_tfp_real_nvp_with_a_spline(mask, parity):
    d, k, bound = 5, 4, 2.0
    bij = randomize(tg.SplineCoupling((d,), mask, parity=parity, bins=k, bound=bound, hidden=(16,),
                                      dtype=tf.float64), seed=3)
    idx = np.arange(d)
    a = {"half": idx[:d // 2] if parity == 0 else idx[d // 2:], "alternate": idx[idx % 2 == parity]}[mask]
    b = np.setdiff1d(idx, a)
    perm = np.concatenate([a, b])  # TFP's RealNVP conditions on the first num_masked entries

    def bijector_fn(x_a, output_units, **_):
        raw = tf.reshape(bij.conditioner(x_a), [-1, output_units, 3 * k - 1])
        return tfb.RationalQuadraticSpline(*spline_params(raw, k, bound), range_min=-bound)

    ref = tfb.Chain([tfb.Permute(np.argsort(perm)), tfb.RealNVP(len(a), bijector_fn=bijector_fn),
                     tfb.Permute(perm)])
    z = tf.constant(_rng(2).standard_normal((6, d)) * 1.5)
    np.testing.assert_allclose(bij.forward(z), ref.forward(z), rtol=1e-10, atol=1e-10)
    x = ref.forward(z)
    np.testing.assert_allclose(bij.inverse(x), ref.inverse(x), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(bij.forward_log_det_jacobian(z, 1), ref.forward_log_det_jacobian(z, 1),
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("make", [
    lambda: tg.SplineCoupling((4,), "alternate", bins=4, bound=1.0, hidden=(8,)),
    lambda: tg.SplineCoupling((4, 4, 2), "checkerboard", bins=3, bound=1.0, hidden=4),
    lambda: tg.MaskedAutoregressive((4,), "spline", bins=4, bound=1.0, hidden=(8,)),
    lambda: tg.MaskedAutoregressive((4,), "spline", bins=4, bound=1.0, hidden=(8,), inverse_autoregressive=True),
], ids=["coupling_vector", "coupling_checkerboard", "maf", "iaf"])
def test_inputs_outside_the_bound_pass_through_the_tails_finite(make):
    """flowjax#239, nflows#23, bayesflow#721: out-of-bound inputs made NaN there."""
    keras.utils.set_random_seed(0)
    bij = randomize(make(), seed=1)
    event = (4,) if bij.forward_min_event_ndims == 1 else (4, 4, 2)
    nd = len(event)
    signs = np.where(_rng(4).random((3,) + event) < 0.5, -1.0, 1.0)
    big = signs * np.array([5.0, 1e3, 1e6]).reshape((3,) + (1,) * nd)
    x = tf.constant(big.astype(np.float32))
    variables = bij.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        z = bij.inverse(x)
        ildj = bij.inverse_log_det_jacobian(x, event_ndims=nd)
        y = bij.forward(x)
        fldj = bij.forward_log_det_jacobian(x, event_ndims=nd)
        loss = tf.reduce_sum(z) + tf.reduce_sum(ildj) + tf.reduce_sum(y) + tf.reduce_sum(fldj)
    # every element is out of bounds: the transformed ones are the identity, the others untouched
    np.testing.assert_array_equal(z, x)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(ildj, 0.0)
    np.testing.assert_array_equal(fldj, 0.0)
    for g in tape.gradient(loss, [x] + list(variables)):
        assert g is not None and np.all(np.isfinite(g))


def test_spline_tails_are_exact_identity_beside_a_curved_interior():
    bij = randomize(tg.SplineCoupling((2,), "half", bins=5, bound=1.0, hidden=(8,), dtype=tf.float64), seed=5)
    z = tf.constant([[0.3, 2.0], [0.3, -7.0], [0.3, 0.5]], tf.float64)
    x = bij.forward(z).numpy()
    np.testing.assert_array_equal(x[:2, 1], [2.0, -7.0])
    assert abs(x[2, 1] - 0.5) > 1e-3  # the interior is not the identity
    np.testing.assert_array_equal(bij.forward_log_det_jacobian(z[:2], 1), [0.0, 0.0])


@pytest.mark.parametrize("kwargs,match", [
    (dict(bins=1), "bins must be an int >= 2"), (dict(bins=0), "bins must be an int >= 2"),
    (dict(bins=3.0), "bins must be an int >= 2"), (dict(bound=0.0), "bound must be a positive"),
    (dict(bound=-2.0), "bound must be a positive"), (dict(bound=float("inf")), "bound must be a positive"),
])
def test_bad_spline_arguments_raise_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tg.SplineCoupling((4,), "half", hidden=(4,), **kwargs)
    with pytest.raises(ValueError, match=match):
        tg.MaskedAutoregressive((4,), "spline", hidden=(4,), **kwargs)


@pytest.mark.parametrize("order", [[0, 0, 1], [0, 1], [0, 1, 3], [0.5, 1, 2], "abc", [2, 1, 0, 3]])
def test_an_order_that_is_not_a_permutation_raises(order):
    with pytest.raises(ValueError, match=r"order must be a permutation of range\(3\)"):
        tg.MaskedAutoregressive((3,), order=order)
    with pytest.raises(ValueError, match=r"order must be a permutation of range\(3\)"):
        MADE(3, 2, order=order)


def test_other_bad_autoregressive_arguments():
    with pytest.raises(ValueError, match="transform must be one of"):
        tg.MaskedAutoregressive((3,), transform="quadratic")
    with pytest.raises(ValueError, match="differs from order"):
        tg.MaskedAutoregressive((3,), order=(2, 1, 0), conditioner=MADE(3, 2, hidden_units=(4,)))
    with pytest.raises(ValueError, match=r"expected \[None, 3, 2\]"):
        tg.MaskedAutoregressive((3,), conditioner=MADE(3, 5, hidden_units=(4,)))


def test_made_masks_connect_exactly_the_earlier_dimensions():
    order = (2, 0, 3, 1)
    masks = made_masks(order, (7, 5), params=2)
    path = masks[0]
    for m in masks[1:]:
        path = (path @ m > 0).astype(int)  # can input i reach output unit o?
    rank = np.argsort(order)  # position of each dimension in the order
    for i in range(4):
        for o in range(4):
            reach = path[i, 2 * o:2 * o + 2]
            assert np.all(reach == (rank[i] < rank[o])), (i, o)


@pytest.mark.parametrize("transform", ["affine", "spline"])
@pytest.mark.parametrize("iaf", [False, True])
def test_jacobian_is_triangular_in_the_given_order(transform, iaf):
    order = (3, 0, 4, 2, 1)
    bij = randomize(tg.MaskedAutoregressive((5,), transform, order=order, hidden=(16, 16), bins=4, bound=3.0,
                                            inverse_autoregressive=iaf, dtype=tf.float64), seed=2)
    z = tf.constant(_rng(6).standard_normal((4, 5)))
    for fn in (bij.forward, bij.inverse):
        with tf.GradientTape() as tape:
            tape.watch(z)
            out = fn(z)
        jac = tape.batch_jacobian(out, z).numpy()[:, order][:, :, order]  # rows, columns in the order
        np.testing.assert_array_equal(np.triu(jac, 1), 0.0)
        assert np.all(np.abs(np.diagonal(jac, axis1=1, axis2=2)) > 0)
        assert np.all(np.abs(np.tril(jac, -1)).sum(axis=(1, 2)) > 1e-6)  # it is not elementwise


@pytest.mark.parametrize("iaf", [False, True])
def test_affine_maf_and_iaf_match_tfp_given_the_same_shift_and_log_scale_fn(iaf):
    bij = randomize(tg.MaskedAutoregressive((6,), "affine", order=(5, 1, 3, 0, 2, 4), hidden=(16,),
                                            inverse_autoregressive=iaf, dtype=tf.float64), seed=4)
    ref = tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=bij.shift_and_log_scale)
    ref = tfb.Invert(ref) if iaf else ref
    z = tf.constant(_rng(7).standard_normal((5, 6)))
    x = ref.forward(z)
    np.testing.assert_allclose(bij.forward(z), x, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(bij.inverse(x), ref.inverse(x), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(bij.forward_log_det_jacobian(z, 1), ref.forward_log_det_jacobian(z, 1), rtol=1e-10)
    np.testing.assert_allclose(bij.inverse_log_det_jacobian(x, 1), ref.inverse_log_det_jacobian(x, 1), rtol=1e-10)


@pytest.mark.parametrize("iaf", [False, True])
def test_spline_maf_matches_tfp_maf_with_a_spline_bijector_fn(iaf):
    k, bound = 5, 2.0
    bij = randomize(tg.MaskedAutoregressive((4,), "spline", order=(1, 3, 0, 2), hidden=(16,), bins=k, bound=bound,
                                            inverse_autoregressive=iaf, dtype=tf.float64), seed=8)

    def bijector_fn(y, **_):
        return tfb.RationalQuadraticSpline(*spline_params(bij.conditioner(y), k, bound), range_min=-bound)

    ref = tfb.MaskedAutoregressiveFlow(bijector_fn=bijector_fn)
    ref = tfb.Invert(ref) if iaf else ref
    z = tf.constant(_rng(9).standard_normal((5, 4)) * 1.5)
    x = ref.forward(z)
    np.testing.assert_allclose(bij.forward(z), x, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(bij.inverse(x), ref.inverse(x), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(bij.forward_log_det_jacobian(z, 1), ref.forward_log_det_jacobian(z, 1),
                               rtol=1e-9, atol=1e-9)


def test_iaf_is_the_inverse_of_maf_on_the_same_network():
    made = MADE(4, 2, hidden_units=(8,), order=(3, 2, 1, 0), dtype="float64")
    maf = tg.MaskedAutoregressive((4,), order=(3, 2, 1, 0), conditioner=made, dtype=tf.float64)
    iaf = tg.MaskedAutoregressive((4,), order=(3, 2, 1, 0), conditioner=made, inverse_autoregressive=True,
                                  dtype=tf.float64)
    randomize(maf, seed=1)
    v = tf.constant(_rng(3).standard_normal((3, 4)))
    np.testing.assert_allclose(iaf.forward(v), maf.inverse(v), rtol=1e-12)
    np.testing.assert_allclose(iaf.inverse(v), maf.forward(v), rtol=1e-12)


@pytest.mark.parametrize("inverse_autoregressive", [False, True])
def test_the_sequential_direction_is_one_loop_whatever_the_dimension(inverse_autoregressive):
    # Unrolled, D network calls per layer: MAF sampling on 28x28 images (D = 784, 5 layers)
    # exhausted 24 GB while tracing. A while loop keeps the graph the same size for any D.
    def graph_size(d):
        bij = tg.MaskedAutoregressive((d,), "affine", hidden=(8,), inverse_autoregressive=inverse_autoregressive)
        sequential = bij.inverse if inverse_autoregressive else bij.forward
        fn = tf.function(lambda v: sequential(v)).get_concrete_function(tf.TensorSpec([None, d], tf.float32))
        return len(fn.graph.get_operations())

    assert graph_size(256) == graph_size(4)


@pytest.mark.parametrize("builder,kwargs", [(tg.models.nsf, {"couplings": 2}), (tg.models.maf, {"layers": 2})])
def test_a_pixel_dark_in_the_first_batch_is_not_blown_up_on_flattened_images(builder, kwargs):
    # Per-pixel ActNorm statistics scaled a pixel that was dark in every image of the first batch
    # by ~1/0.001 in each layer: on 28x28 digits the rare image with ink there scored 6288 bits/dim.
    from tfp_glow.bijectors import initialize_actnorm

    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, (64, 6, 6, 1)).astype(np.float32)
    x[:, 0] = -0.5 + rng.uniform(0.0, 1.0 / 256, (64, 6, 1))  # the top row: dark, up to the noise
    dist = builder((6, 6, 1), hidden=(16,), **kwargs)
    initialize_actnorm(dist.bijector, tf.constant(x))
    first = dist.bijector.bijectors[1]  # data -> latent (our Chain lists that way): flatten, then ActNorm
    z = first.inverse(tf.reshape(x, [64, 36])).numpy()
    np.testing.assert_allclose([z.mean(), z.var()], [0.0, 1.0], atol=1e-4)  # pooled over the pixels
    lit = x[:1].copy()
    lit[0, 0, 2, 0] = 0.4  # ink in the dark row
    gap = (dist.log_prob(x[:1]) - dist.log_prob(lit)).numpy()[0]
    assert np.isfinite(gap) and gap < 50.0, gap  # nats; per-pixel statistics gave about 1e5

"""The property suite: every bijector in the registry passes every property."""
import inspect

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_glow as tg
from registry import REGISTRY, bijector_types, make

tfb = tfp.bijectors
NAMES = sorted(REGISTRY)


def _x(event_shape, batch=3, dtype=np.float32, seed=1):
    return tf.constant(np.random.default_rng(seed).standard_normal((batch,) + event_shape).astype(dtype))


def _nd(event_shape):
    return len(event_shape)


def test_registry_covers_every_bijector_class():
    classes = {c for _, c in inspect.getmembers(tg.bijectors, inspect.isclass) if issubclass(c, tfb.Bijector)}
    seen = set()
    for name in NAMES:
        seen |= bijector_types(make(name)[0])
    assert classes <= seen, f"not registered: {sorted(c.__name__ for c in classes - seen)}"


@pytest.mark.parametrize("name", NAMES)
def test_invertible_both_ways(name):
    bij, ev = make(name)
    z = _x(ev)
    x = _x(tuple(tf.TensorShape(bij.forward_event_shape(ev)).as_list()), seed=2)
    # Eager calls bypass TFP's cache, so this is a real round trip in float32. A randomised
    # chain of 8-channel LU convolutions and sigmoid-scale couplings (division by s < 1 on the
    # way in) amplifies rounding to ~1e-4 of the data's scale; single layers stay near 1e-6.
    np.testing.assert_allclose(bij.forward(bij.inverse(x)), x, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(bij.inverse(bij.forward(z)), z, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_fldj_is_minus_ildj(name):
    bij, ev = make(name)
    z = _x(ev)
    fldj = bij.forward_log_det_jacobian(z, event_ndims=_nd(ev))
    ildj = bij.inverse_log_det_jacobian(bij.forward(z), event_ndims=_nd(ev))
    np.testing.assert_allclose(fldj + 0 * ildj, -ildj + 0 * fldj, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_log_det_matches_autodiff_jacobian_float64(name):
    bij, ev = make(name, dtype=tf.float64)
    d = int(np.prod(ev))
    z = tf.reshape(_x(ev, batch=2, dtype=np.float64), (2, d))
    out_ev = tuple(tf.TensorShape(bij.forward_event_shape(ev)).as_list())
    with tf.GradientTape() as tape:
        tape.watch(z)
        x = tf.reshape(bij.forward(tf.reshape(z, (2,) + ev)), (2, d))
    jac = tape.batch_jacobian(x, z).numpy()
    _, expected = np.linalg.slogdet(jac)
    fldj = bij.forward_log_det_jacobian(tf.reshape(z, (2,) + ev), event_ndims=_nd(ev))
    np.testing.assert_allclose(np.broadcast_to(fldj, (2,)), expected, atol=1e-8, rtol=1e-8)
    # the inverse side too: ildj(x) = -log|det J_forward(z)|
    ildj = bij.inverse_log_det_jacobian(tf.reshape(x, (2,) + out_ev), event_ndims=len(out_ev))
    np.testing.assert_allclose(np.broadcast_to(ildj, (2,)), -expected, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_event_shapes_are_consistent(name):
    bij, ev = make(name)
    x = _x(ev)
    y = bij.forward(x)
    assert tuple(tf.TensorShape(bij.forward_event_shape(ev)).as_list()) == tuple(y.shape[1:])
    assert tuple(tf.TensorShape(bij.inverse_event_shape(y.shape[1:])).as_list()) == ev
    assert tuple(bij.forward_event_shape_tensor(tf.constant(ev)).numpy()) == tuple(y.shape[1:])


@pytest.mark.parametrize("name", NAMES)
def test_unknown_batch_inside_tf_function_and_xla_agree_with_eager(name):
    bij, ev = make(name)
    nd = _nd(ev)
    out_ev = tuple(tf.TensorShape(bij.forward_event_shape(ev)).as_list())

    def run(z, x):
        return (bij.forward(z), bij.inverse(x), bij.forward_log_det_jacobian(z, event_ndims=nd),
                bij.inverse_log_det_jacobian(x, event_ndims=len(out_ev)))

    sig = [tf.TensorSpec((None,) + ev, tf.float32), tf.TensorSpec((None,) + out_ev, tf.float32)]
    graph = tf.function(run, input_signature=sig)
    xla = tf.function(run, input_signature=sig, jit_compile=True)
    z = _x(ev, batch=4)
    x = _x(out_ev, batch=4, seed=2)
    eager = run(z, x)
    for fn in (graph, xla):
        for got, want in zip(fn(z, x), eager):
            np.testing.assert_allclose(np.broadcast_to(got, np.shape(want)) if np.ndim(got) < np.ndim(want) else got,
                                       want, atol=2e-5, rtol=2e-5)
    # a second, different batch size reuses the unknown-batch trace
    out = graph(_x(ev, batch=1), _x(out_ev, batch=1))
    assert out[0].shape[0] == 1 and out[1].shape[0] == 1


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_variable(name):
    bij, ev = make(name)
    out_ev = tuple(tf.TensorShape(bij.forward_event_shape(ev)).as_list())
    x = _x(out_ev)
    variables = bij.trainable_variables
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = bij.inverse(x)
        loss = tf.reduce_sum(z ** 2) - tf.reduce_sum(bij.inverse_log_det_jacobian(x, event_ndims=len(out_ev)))
    grads = tape.gradient(loss, list(variables) + [x])
    assert grads[-1] is not None and np.all(np.isfinite(grads[-1]))
    for v, g in zip(variables, grads[:-1]):
        assert g is not None, f"no gradient for {v.name}"
        assert np.all(np.isfinite(g)) and np.any(np.asarray(g) != 0), f"zero gradient for {v.name}"


@pytest.mark.parametrize("name", NAMES)
def test_keras_weights_and_tf_module_variables_are_the_same_objects(name):
    bij, _ = make(name)
    from_keras = {id(w.value) for layer in tg.bijectors.keras_layers(bij) for w in layer.trainable_weights}
    from_module = {id(v) for v in bij.trainable_variables}
    assert from_keras == from_module


@pytest.mark.parametrize("name", NAMES)
def test_saved_model_round_trip(name, tmp_path):
    bij, ev = make(name)
    out_ev = tuple(tf.TensorShape(bij.forward_event_shape(ev)).as_list())
    nd = _nd(ev)
    module = tf.Module()
    module.bijector = bij
    module.forward = tf.function(lambda z: bij.forward(z), input_signature=[tf.TensorSpec((None,) + ev)])
    module.inverse = tf.function(lambda x: bij.inverse(x), input_signature=[tf.TensorSpec((None,) + out_ev)])
    module.ildj = tf.function(lambda x: bij.inverse_log_det_jacobian(x, event_ndims=len(out_ev)),
                              input_signature=[tf.TensorSpec((None,) + out_ev)])
    tf.saved_model.save(module, str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    z, x = _x(ev, batch=2), _x(out_ev, batch=2, seed=3)
    np.testing.assert_allclose(loaded.forward(z), bij.forward(z), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(loaded.inverse(x), bij.inverse(x), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(loaded.ildj(x), bij.inverse_log_det_jacobian(x, event_ndims=nd if out_ev == ev else len(out_ev)), atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_lean_walk_matches_tfp_public_methods(name):
    # the fused walk used in training must agree with TFP's own inverse/ildj machinery
    bij, ev = make(name)
    out_ev = tuple(tf.TensorShape(bij.forward_event_shape(ev)).as_list())
    z, x = _x(ev), _x(out_ev, seed=4)
    got_z, got_ildj = tg.bijectors.inverse_and_log_det(bij, x, len(out_ev))
    np.testing.assert_allclose(got_z, bij.inverse(x), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.broadcast_to(got_ildj, (3,)),
                               np.broadcast_to(bij.inverse_log_det_jacobian(x, event_ndims=len(out_ev)), (3,)),
                               atol=1e-4, rtol=1e-5)
    got_x, got_fldj = tg.bijectors.forward_and_log_det(bij, z, _nd(ev))
    np.testing.assert_allclose(got_x, bij.forward(z), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.broadcast_to(got_fldj, (3,)),
                               np.broadcast_to(bij.forward_log_det_jacobian(z, event_ndims=_nd(ev)), (3,)),
                               atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_eager_calls_never_return_stale_cached_results(name):
    # TFP caches by input tensor object; after a parameter update the same tensor must give
    # the new numbers (an eager GradientTape loop reuses its batch tensor)
    bij, ev = make(name)
    out_ev = tuple(tf.TensorShape(bij.forward_event_shape(ev)).as_list())
    x = _x(out_ev)
    z_old = bij.inverse(x)  # held alive, so TFP's cache would keep it
    ildj_old = bij.inverse_log_det_jacobian(x, event_ndims=len(out_ev))
    if not bij.trainable_variables:
        return
    for v in bij.trainable_variables:
        v.assign_add(0.05 * tf.ones_like(v))
    fresh = tf.identity(x)
    np.testing.assert_allclose(bij.inverse(x), bij.inverse(fresh), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(bij.inverse_log_det_jacobian(x, event_ndims=len(out_ev)),
                               bij.inverse_log_det_jacobian(fresh, event_ndims=len(out_ev)), rtol=1e-6, atol=1e-5)
    assert not np.allclose(bij.inverse(x), z_old) or not np.allclose(
        bij.inverse_log_det_jacobian(x, event_ndims=len(out_ev)), ildj_old)

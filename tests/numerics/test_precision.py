"""`tfp_glow.numerics.precision`: native-bf16 detection, the `auto` policy, the float32 data path under
`mixed_bfloat16`, and the float32 twin that reported figures come from."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_glow as tg
from tfp_glow import models, training
from tfp_glow import serving
from tfp_glow.numerics import precision

TINY_GLOW = models.FlowConfig("glow", (8, 8, 1), dict(levels=2, steps=2, hidden_channels=16))


def _digits(n):
    return tg.data.load_digits("train")[:n]


@pytest.fixture
def policy():
    """Set a global Keras policy for one test, and always go back to float32."""
    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy("float32")


def test_native_bf16_is_read_from_the_cpu_flags_and_the_gpus(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert precision.cpu_flags(str(info)) >= {"avx512_bf16", "avx2"}
    assert precision.cpu_flags(str(tmp_path / "missing")) == set()
    assert precision.has_native_bf16(flags={"avx2", "avx512_bf16"}, gpu_capabilities=[])
    assert precision.has_native_bf16(flags={"amx_bf16"}, gpu_capabilities=[])
    assert not precision.has_native_bf16(flags={"avx2", "avx512f"}, gpu_capabilities=[])
    # with GPUs, they decide: Ampere (8.0) and later have native bf16, Volta (7.0) does not
    assert precision.has_native_bf16(flags=set(), gpu_capabilities=[(8, 0), (9, 0)])
    assert not precision.has_native_bf16(flags={"avx512_bf16"}, gpu_capabilities=[(7, 0)])


def test_auto_policy_is_bf16_only_with_native_bf16(monkeypatch):
    monkeypatch.delenv("TFP_GLOW_MIXED_PRECISION", raising=False)
    assert precision.resolve_policy("auto", native_bf16=True) == "mixed_bfloat16"
    assert precision.resolve_policy("auto", native_bf16=False) == "none"
    assert precision.resolve_policy("none", native_bf16=True) == "none"
    assert precision.resolve_policy("mixed_float16") == "mixed_float16"
    monkeypatch.setenv("TFP_GLOW_MIXED_PRECISION", "none")
    assert precision.resolve_policy("auto", native_bf16=True) == "none"
    with pytest.raises(ValueError, match="mixed precision must be one of auto, none, mixed_bfloat16"):
        precision.resolve_policy("bf16")
    monkeypatch.setenv("TFP_GLOW_MIXED_PRECISION", "fp8")
    with pytest.raises(ValueError, match="TFP_GLOW_MIXED_PRECISION must be one of none"):
        precision.resolve_policy("auto")


def test_the_data_path_stays_float32_under_mixed_bfloat16(policy):
    """Only the conditioner networks compute in bf16. A fresh Glow's conditioners output exactly
    zero (zero-initialised last layers) whatever their precision, so any bf16 op on the data
    path (ActNorm, 1x1 convs, couplings, squeezes, priors) would show as a rounding error of
    about 1e-2 in z and of nats in log p; in float32 they agree to float32 rounding."""
    x = _digits(32)
    ref = training.FlowModel(TINY_GLOW, n_bits=5)
    ref.initialize(x)
    policy("mixed_bfloat16")
    bf16 = training.FlowModel(TINY_GLOW, n_bits=5)
    bf16.set_weights(ref.get_weights())
    couplings = [m for m in bf16.distribution.bijector.submodules if isinstance(m, tg.AffineCoupling)]
    assert couplings and all(c.conditioner.compute_dtype == "bfloat16" for c in couplings)  # not vacuous
    x_pre = ref.preprocess(tf.constant(x), fixed_noise=True)
    z_ref, ildj_ref = tg.bijectors.inverse_and_log_det(ref.distribution.bijector, x_pre, 3)
    z, ildj = tg.bijectors.inverse_and_log_det(bf16.distribution.bijector, x_pre, 3)
    assert z.dtype == tf.float32 and ildj.dtype == tf.float32
    assert float(tf.reduce_max(tf.abs(z_ref))) > 0.5  # a non-trivial transform
    np.testing.assert_allclose(z.numpy(), z_ref.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ildj.numpy(), ildj_ref.numpy(), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(bf16(x).numpy(), ref(x).numpy(), rtol=1e-5, atol=1e-3)


def test_the_float32_twin_scores_as_a_float32_model_with_the_same_weights(policy):
    x = _digits(64)
    policy("mixed_bfloat16")
    model = training.FlowModel(TINY_GLOW, n_bits=5)
    model.compile(jit_compile=False, seed=0)
    model.fit(x, batch_size=16, epochs=2, verbose=0)
    assert precision.uses_reduced_precision(model)
    twin = precision.float32_twin(model)
    policy("float32")
    assert twin is not model and not precision.uses_reduced_precision(twin)
    assert keras.mixed_precision.global_policy().name == "float32"
    # the independent reference: a float32 model built from scratch, given the weights by hand
    ref = training.FlowModel(TINY_GLOW, n_bits=5)
    for v, w in zip(ref.weights, model.weights):
        v.assign(w)
    np.testing.assert_allclose(twin(x).numpy(), ref(x).numpy(), rtol=1e-6)
    # bf16 rounding in the conditioners changes the figure: the twin's is the float32 one
    assert not np.allclose(model(x).numpy(), ref(x).numpy(), rtol=1e-6)
    assert precision.float32_twin(ref) is ref  # a float32 model is its own twin


def _float32_copy(model, weights=None):
    """The independent reference: a float32 model built from scratch, its weights assigned by hand
    (`weights`, else `model`'s, in `model.weights` order)."""
    ref = training.FlowModel(TINY_GLOW, n_bits=5)
    for v, w in zip(ref.weights, weights if weights is not None else model.weights):
        v.assign(w)
    return ref


def _trained_bf16_model(policy, **compile_kwargs):
    """A Glow trained under mixed_bfloat16 long enough that bf16 rounding in its conditioners
    moves log p(x) by more than 1e-2 nats."""
    x = _digits(64)
    policy("mixed_bfloat16")
    model = training.FlowModel(TINY_GLOW, n_bits=5)
    model.compile(jit_compile=False, seed=0, learning_rate=5e-3, warmup_steps=0, **compile_kwargs)
    model.fit(x, batch_size=16, epochs=4, verbose=0)
    policy("float32")
    return model, x


def test_the_float32_twin_of_an_ema_model_evaluates_with_the_averages(policy):
    model, x = _trained_bf16_model(policy, ema_decay=0.9)
    twin = precision.float32_twin(model)
    assert twin.ema_decay == 0.9 and not precision.uses_reduced_precision(twin)
    twin.compile(jit_compile=False, ema_decay=twin.ema_decay)
    # reference: a float32 model holding the averages of the trainable weights, the rest as they are
    averages = {id(t): a for t, a in zip(model.weight_average.targets, model.weight_average.averages)}
    flow_weights = model.weights[:len(_float32_copy(model).weights)]  # the weight average's come last
    assert any(id(w) in averages for w in flow_weights)
    ref = _float32_copy(model, [averages.get(id(w), w) for w in flow_weights])
    raw = _float32_copy(model)
    ds = tg.data.make_dataset(x, 64, shuffle=False)
    got = twin.predict(ds, verbose=0)["log_prob"]
    np.testing.assert_allclose(got, ref(x).numpy(), rtol=0, atol=1e-4)  # float32 rounding (graph vs eager)
    assert np.abs(got - raw(x).numpy()).max() > 1e-2  # the averages are not the raw weights
    # evaluate's nll is the discrete one: -log p(x) + D * n_bits * ln 2
    np.testing.assert_allclose(twin.evaluate(ds, verbose=0, return_dict=True)["nll"],
                               -np.mean(ref(x).numpy()) + 64 * 5 * np.log(2.0), rtol=1e-5)


def test_a_bf16_model_exports_float32_figures(policy, tmp_path):
    model, x = _trained_bf16_model(policy)
    ref = _float32_copy(model)
    want = ref(x).numpy()
    assert np.abs(model(x).numpy() - want).max() > 1e-2  # bf16 would serve other figures
    for path in (serving.export_saved_model(model, str(tmp_path / "fn")),
                 model.export(str(tmp_path / "method"), verbose=False)):
        loaded = tf.saved_model.load(path)
        got = loaded.signatures["log_prob"](x=tf.constant(x, tf.uint8))["log_prob"].numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)
    assert precision.uses_reduced_precision(model)  # the model itself is left as it was

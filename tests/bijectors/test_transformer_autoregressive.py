"""TransformerAutoregressive (TarFlow) beyond the shared property suite: the reference's
numbers, the token layout, causality, conditioning, bounded scales and bad arguments.

`tests/fixtures/tarflow_metablock.npz` comes from apple/ml-tarflow's `MetaBlock` on fixed
random weights (`tfp_glow/bench/tarflow_reference.py`, PyTorch, float32); CI needs no PyTorch.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_glow import bijectors as tg_bijectors
from tfp_glow.bijectors import TransformerAutoregressive
from tfp_glow.bijectors.conditioning import CONDITIONAL_INPUT
import support

FIXTURE = support.FIXTURES / "tarflow_metablock.npz"
CASES = ("identity", "flip")


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURE) as f:
        return {k: f[k] for k in f.files}


def _config(ref):
    return {k.split("/")[1]: int(v) for k, v in ref.items() if k.startswith("config/")}


def _feature_map(p, c):
    """`ref_index[f]`: the reference's feature `(c, i, j) -> c p p + i p + j` of our feature
    `f = (i p + j) C + c` within a patch token (`unfold` vs channels-last)."""
    return np.array([ch * p * p + i * p + j for i in range(p) for j in range(p) for ch in range(c)])


def reference_bijector(ref, case, dtype=tf.float32, scale_bound=None):
    """Our bijector with the reference's weights of `case` (PyTorch `[out, in]` -> `[in, out]`)."""
    cfg = _config(ref)
    w = {k.split("/", 2)[2]: v for k, v in ref.items() if k.startswith(f"{case}/w/")}
    k = cfg["num_classes"] if "class_embed" in w else 0
    bij = TransformerAutoregressive(
        (cfg["height"], cfg["height"], cfg["channels_in"]), patch_size=cfg["patch_size"], width=cfg["width"],
        layers=cfg["layers"], heads=cfg["width"] // cfg["head_dim"], expansion=cfg["expansion"], order=case,
        context_dim=k, scale_bound=scale_bound, dtype=dtype, name=f"tarflow_{case}")
    f = _feature_map(cfg["patch_size"], cfg["channels_in"])
    d = len(f)
    out_cols = np.concatenate([f, d + f])  # [a | b], each in the reference's feature order
    values = {"proj_in_kernel": w["proj_in.weight"].T[f], "proj_in_bias": w["proj_in.bias"],
              "pos_embed": w["pos_embed"], "proj_out_kernel": w["proj_out.weight"].T[:, out_cols],
              "proj_out_bias": w["proj_out.bias"][out_cols]}
    torch_names = {"attn_norm_gamma": "attention.norm.weight", "attn_norm_beta": "attention.norm.bias",
                   "qkv_kernel": "attention.qkv.weight", "qkv_bias": "attention.qkv.bias",
                   "attn_out_kernel": "attention.proj.weight", "attn_out_bias": "attention.proj.bias",
                   "mlp_norm_gamma": "mlp.norm.weight", "mlp_norm_beta": "mlp.norm.bias",
                   "mlp_in_kernel": "mlp.main.0.weight", "mlp_in_bias": "mlp.main.0.bias",
                   "mlp_out_kernel": "mlp.main.2.weight", "mlp_out_bias": "mlp.main.2.bias"}
    for layer in range(cfg["layers"]):
        for ours, theirs in torch_names.items():
            v = w[f"attn_blocks.{layer}.{theirs}"]
            values[f"layer{layer}_{ours}"] = v.T if v.ndim == 2 else v
    if k:
        values["context/kernel"] = w["class_embed"][:, 0, :]  # one-hot c @ E = class_embed[y]
        values["context/bias"] = np.zeros(cfg["width"], np.float32)
    by_path = {wt.path.split("/", 1)[1]: wt for wt in bij.network.weights}
    assert sorted(by_path) == sorted(values)
    for name, v in values.items():
        by_path[name].assign(v.astype(dtype.as_numpy_dtype))
    return bij


def _kwargs(ref, case, dtype, uniform=False):
    if case != "flip":
        return {}
    k = _config(ref)["num_classes"]
    c = np.full((len(ref["flip/y"]), k), 1.0 / k) if uniform else np.eye(k)[ref["flip/y"]]
    return {CONDITIONAL_INPUT: tf.constant(c, dtype)}


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES)
def test_density_pass_matches_the_reference_metablock(ref, case, dtype):
    bij = reference_bijector(ref, case, dtype)
    x = tf.constant(ref[f"{case}/x"], dtype)
    z = bij.inverse(x, **_kwargs(ref, case, dtype))
    ildj = bij.inverse_log_det_jacobian(x, 3, **_kwargs(ref, case, dtype))
    np.testing.assert_allclose(z, ref[f"{case}/z"], atol=1e-5, rtol=1e-5)
    # the reference's log-det is a mean over the T tokens and D values of each; ours the sum
    size = int(np.prod(x.shape[1:]))
    np.testing.assert_allclose(ildj, ref[f"{case}/logdet"] * size, atol=2e-5, rtol=1e-6)
    if case == "flip":  # a uniform context is the reference's y=None: the mean class embedding
        z_mean = bij.inverse(x, **_kwargs(ref, case, dtype, uniform=True))
        np.testing.assert_allclose(z_mean, ref["flip/z_mean_class"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_sampling_matches_the_reference_reverse_and_inverts_the_density_pass(ref, case):
    bij = reference_bijector(ref, case)
    kw = _kwargs(ref, case, tf.float32)
    x = bij.forward(tf.constant(ref[f"{case}/z_sample"]), **kw)
    np.testing.assert_allclose(x, ref[f"{case}/x_sample"], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(bij.forward(tf.constant(ref[f"{case}/z"]), **kw), ref[f"{case}/x"], atol=1e-4)
    # XLA with an unknown batch size gives the same samples
    xla = tf.function(lambda z, c: bij.forward(z, **({CONDITIONAL_INPUT: c} if kw else {})), jit_compile=True,
                      input_signature=[tf.TensorSpec([None, 8, 8, 2]), tf.TensorSpec([None, 3])])
    c = kw.get(CONDITIONAL_INPUT, tf.zeros([len(x), 3]))
    np.testing.assert_allclose(xla(tf.constant(ref[f"{case}/z_sample"]), c), x, atol=1e-5)


def test_a_large_bound_is_inactive_at_the_fixture_values(ref):
    # (the match above uses scale_bound=None, the reference's unbounded scale)
    bij = reference_bijector(ref, "identity", scale_bound=1e3)
    z = bij.inverse(tf.constant(ref["identity/x"]))
    np.testing.assert_allclose(z, ref["identity/z"], atol=1e-5, rtol=1e-5)


def _random(bij, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    for v in bij.trainable_variables:
        v.assign(v + scale * rng.standard_normal(v.shape).astype(v.dtype.as_numpy_dtype))
    return bij


def test_token_layout_and_causality():
    # (4, 4, 1), patch 2: T = 4 tokens; flow position t holds patch order[t]
    order = (2, 0, 3, 1)
    bij = _random(TransformerAutoregressive((4, 4, 1), patch_size=2, width=8, layers=1, heads=2, order=order))
    x = np.random.default_rng(1).standard_normal((2, 4, 4, 1)).astype(np.float32)
    patches = [(slice(0, 2), slice(0, 2)), (slice(0, 2), slice(2, 4)), (slice(2, 4), slice(0, 2)),
               (slice(2, 4), slice(2, 4))]  # row-major over the patch grid
    z = bij.inverse(x).numpy()
    first = patches[order[0]]
    np.testing.assert_array_equal(z[:, first[0], first[1]], x[:, first[0], first[1]])  # token 0 passes
    for t in range(4):  # changing the token at flow position t changes only tokens >= t
        bumped = x.copy()
        r, c = patches[order[t]]
        bumped[:, r, c] += 1.0
        dz = np.abs(bij.inverse(bumped).numpy() - z)
        for s in range(4):
            rs, cs = patches[order[s]]
            assert (dz[:, rs, cs].max() > 1e-4) == (s >= t), (t, s)


def test_scales_are_bounded_on_both_passes():
    bij = TransformerAutoregressive((4, 4, 1), patch_size=2, width=8, layers=1, heads=2, scale_bound=2.0)
    bij.network.proj_out_bias.assign(np.full(8, 1e4, np.float32))  # raw log-scale and shift 1e4
    x = tf.ones([2, 4, 4, 1])
    for out in (bij.inverse(x), bij.forward(x)):
        assert np.all(np.isfinite(out.numpy()))
    # |ildj| <= bound * (T - 1) * D: the first token is never scaled
    np.testing.assert_allclose(bij.inverse_log_det_jacobian(x, 3), -2.0 * 3 * 4, rtol=1e-6)


def test_conditional_log_det_is_the_autodiff_jacobian_and_the_context_matters():
    bij = _random(TransformerAutoregressive((2, 2, 1), patch_size=1, width=4, layers=1, heads=2, order="flip",
                                            context_dim=3, dtype=tf.float64))
    z = tf.constant(np.random.default_rng(2).standard_normal((3, 2, 2, 1)))
    c = tf.one_hot([0, 2, 1], 3, dtype=tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(z)
        x = bij.forward(z, conditional_input=c)
    jac = tf.reshape(tape.batch_jacobian(x, z), [3, 4, 4]).numpy()
    np.testing.assert_allclose(bij.forward_log_det_jacobian(z, 3, conditional_input=c),
                               np.linalg.slogdet(jac)[1], atol=1e-8)
    np.testing.assert_allclose(bij.inverse(x, conditional_input=c), z, atol=1e-8)
    other = bij.forward(z, conditional_input=tf.one_hot([1, 0, 2], 3, dtype=tf.float64))
    assert np.abs(other - x).max() > 1e-3
    # a context for a batch of shape [2, 3] broadcast over the sample axis
    x5 = bij.forward(tf.stack([z, z]), conditional_input=c)
    np.testing.assert_allclose(x5[1], x, atol=1e-10)
    # the context layer's weights are in both views, and the density pass trains them
    from_keras = {id(w.value) for layer in tg_bijectors.keras_layers(bij) for w in layer.trainable_weights}
    assert from_keras == {id(v) for v in bij.trainable_variables}
    context_kernel = bij.network.context_projection.kernel.value
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(bij.inverse(x, conditional_input=c) ** 2)
    assert np.abs(tape.gradient(loss, context_kernel)).max() > 0
    with pytest.raises(ValueError, match="needs `conditional_input`"):
        bij.forward(z)
    with pytest.raises(ValueError, match="not conditional"):
        TransformerAutoregressive((2, 2, 1), patch_size=1, width=4, heads=1).inverse(
            tf.zeros([1, 2, 2, 1]), conditional_input=tf.zeros([1, 3]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(event_shape=(6, 6, 1), patch_size=4), "patch_size 4 must divide"),
    (dict(event_shape=(4, 6, 1), patch_size=4), "patch_size 4 must divide"),
    (dict(width=10, heads=4), r"width \(10\) must be divisible by heads \(4\)"),
    (dict(order=(0, 1, 1, 2)), "permutation of range"),
    (dict(order=(0, 1, 2)), "permutation of range"),
    (dict(order="reverse"), "order must be one of"),
    (dict(scale_bound=-1.0), "scale_bound must be a positive float or None"),
    (dict(layers=0), "layers must be a positive int"),
    (dict(event_shape=(4, 4)), r"event_shape must be \[H, W, C\]"),
])
def test_bad_arguments_are_clear_errors(kwargs, match):
    args = dict(event_shape=(4, 4, 1), patch_size=2, width=8, heads=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        TransformerAutoregressive(**args)


def test_mixed_bfloat16_network_keeps_the_data_path_in_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        bij = TransformerAutoregressive((4, 4, 2), patch_size=2, width=8, layers=1, heads=2, context_dim=3)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert bij.network.compute_dtype == "bfloat16" and bij.network.variable_dtype == "float32"
    x, c = tf.random.stateless_normal([3, 4, 4, 2], seed=[1, 2]), tf.one_hot([0, 1, 2], 3)
    z = bij.inverse(x, conditional_input=c)
    ildj = bij.inverse_log_det_jacobian(x, 3, conditional_input=c)
    # (a plain graph: XLA is covered in float32; under bf16 its compile once took ~1 min in a loaded full run)
    back = tf.function(lambda z, c: bij.forward(z, conditional_input=c))(z, c)
    assert z.dtype == ildj.dtype == back.dtype == tf.float32
    # zero-initialised output: the identity, exactly, whatever the precision
    np.testing.assert_array_equal(back, x)
    np.testing.assert_array_equal(z, x)


def _guided_block(seed=0):
    keras.utils.set_random_seed(seed)
    block = TransformerAutoregressive((4, 4, 1), patch_size=2, width=16, layers=1, heads=2, context_dim=3)
    rng = np.random.default_rng(seed)
    for v in block.trainable_variables:
        v.assign(v + 0.3 * rng.standard_normal(v.shape).astype(np.float32))
    return block


def test_guidance_extrapolates_from_the_mean_class_on_every_token():
    """Reference, token by token in numpy-free TF: with the block's own density-pass network,
    `a, b = (1 + g) f(x_<t; c) - g f(x_<t; uniform)` must reproduce the guided sample."""
    block = _guided_block()
    z = tf.random.stateless_normal((2, 4, 4, 1), [3, 4])
    c = tf.one_hot([0, 2], 3)
    g = 1.5
    x = block.forward(z, conditional_input=c, guidance=g)
    # the guided sample, fed back through the network in parallel, satisfies the guided update
    tokens, latent = block._to_tokens(x), block._to_tokens(z)
    uniform = tf.fill(tf.shape(c), 1.0 / 3)

    def shifted(ctx):
        raw = block.network(tokens, ctx)
        return tf.concat([tf.zeros_like(raw[:, :1]), raw[:, :-1]], axis=1)

    raw = (1 + g) * shifted(c) - g * shifted(uniform)
    log_s, shift = block._log_scale_and_shift(raw)
    np.testing.assert_allclose(tokens.numpy(), (latent * tf.exp(log_s) + shift).numpy(), atol=2e-5)
    # g = 0 is the conditional sample; guidance changes it
    np.testing.assert_allclose(block.forward(z, conditional_input=c, guidance=0.0).numpy(),
                               block.forward(z, conditional_input=c).numpy(), atol=1e-5)
    assert np.abs((x - block.forward(z, conditional_input=c)).numpy()).max() > 1e-3


def test_guidance_stays_finite_and_bounded_at_large_strengths():
    block = _guided_block(1)
    z = tf.random.stateless_normal((3, 4, 4, 1), [5, 6])
    x, fldj = block.forward(z, conditional_input=tf.one_hot([0, 1, 2], 3), guidance=50.0), None
    fldj = block.forward_log_det_jacobian(z, event_ndims=3, conditional_input=tf.one_hot([0, 1, 2], 3),
                                          guidance=50.0)
    assert np.isfinite(x.numpy()).all()
    assert np.all(np.abs(fldj.numpy()) <= 2.0 * 4 * 3 + 1e-4)  # |a| <= bound, 3 guided tokens of 4 values


def test_guidance_under_xla_with_an_unknown_batch():
    block = _guided_block(2)
    fn = tf.function(lambda z, c: block.forward(z, conditional_input=c, guidance=2.0), jit_compile=True,
                     input_signature=[tf.TensorSpec([None, 4, 4, 1]), tf.TensorSpec([None, 3])])
    z = tf.random.stateless_normal((5, 4, 4, 1), [7, 8])
    c = tf.one_hot([0, 1, 2, 0, 1], 3)
    np.testing.assert_allclose(fn(z, c).numpy(), block.forward(z, conditional_input=c, guidance=2.0).numpy(),
                               atol=1e-4)


def test_guidance_on_an_unconditional_block_is_a_clear_error():
    block = TransformerAutoregressive((4, 4, 1), patch_size=2, width=16, layers=1, heads=2)
    with pytest.raises(ValueError, match="guidance needs a class-conditional"):
        block.forward(tf.zeros((1, 4, 4, 1)), guidance=1.0)

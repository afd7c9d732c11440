"""The flow's parameters are Keras 3 weights that Keras (`model.fit`) and TFP
(`dist.trainable_variables` + a plain `GradientTape`) both see and both train.

One small flow holds every bijector type of the package:

    data [4, 4, 2] --DiagonalScale^-1--> --AffineCoupling(checkerboard)^-1-->
    --SplineCoupling(checkerboard)^-1--> --squeeze--> [2, 2, 8] --ActNorm^-1--> --1x1 conv (LU)^-1-->
    --AdditiveCoupling(channel)^-1--> --MaskedAutoregressive(spline, MAF)^-1--> --TransformerAutoregressive^-1-->
    --1x1 conv (plain)^-1-->
    --Split(inner=LearnedPrior)^-1--> --unsqueeze--> latent [4, 4, 2]
"""
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_glow as tg
from registry import bijector_types

tfb = tfp.bijectors
tfd = tfp.distributions

EVENT = (4, 4, 2)


def _smooth_conv_net(out_channels, dtype):
    """Like `networks.conv_net` (zero-initialised last layer) but with tanh instead of relu, so
    that finite differences see a smooth function (no relu kink within the step)."""
    name = tf.as_dtype(dtype).name
    return keras.Sequential([
        keras.layers.Conv2D(8, 3, padding="same", activation="tanh", dtype=name),
        keras.layers.Conv2D(8, 1, padding="same", activation="tanh", dtype=name),
        keras.layers.Conv2D(out_channels, 3, padding="same", kernel_initializer="zeros",
                            bias_initializer="zeros", dtype=name),
    ])


def make_dist(dtype=tf.float32, smooth=False):
    conditioners = ({"conditioner": _smooth_conv_net(4, dtype)}, {"conditioner": _smooth_conv_net(4, dtype)},
                    {"conditioner": _smooth_conv_net(2 * (3 * 4 - 1), dtype)}) \
        if smooth else ({"hidden": 8}, {"hidden": 8}, {"hidden": 8})
    # tfb.Chain applies its list right to left in `forward` (latent -> data), so the list reads
    # from the data side: `log_prob` runs DiagonalScale's inverse first.
    bijector = tg.bijectors.Chain([
        tg.DiagonalScale(EVENT, dtype=dtype),
        tg.AffineCoupling(EVENT, "checkerboard", dtype=dtype, **conditioners[0]),
        tg.SplineCoupling(EVENT, "checkerboard", parity=1, bins=4, bound=3.0, dtype=dtype, **conditioners[2]),
        tfb.Invert(tg.Squeeze(dtype=dtype)),
        tg.ActNorm(8, dtype=dtype),
        tg.InvertibleConv1x1(8, lu=True, seed=0, dtype=dtype),
        tg.AdditiveCoupling((2, 2, 8), "channel", dtype=dtype, **conditioners[1]),
        tg.MaskedAutoregressive((2, 2, 8), "spline", order=tuple(range(31, -1, -1)), hidden=(16,), bins=4,
                                activation="tanh" if smooth else "relu", dtype=dtype),
        tg.bijectors.TransformerAutoregressive((2, 2, 8), patch_size=1, width=8, layers=1, heads=2, dtype=dtype),
        tg.InvertibleConv1x1(8, lu=False, seed=1, dtype=dtype),
        tg.Split((2, 2, 8), inner=tg.LearnedPrior((2, 2, 4), dtype=dtype), dtype=dtype),
        tg.Squeeze(dtype=dtype),
    ])
    base = tfd.Sample(tfd.Normal(tf.constant(0.0, dtype), tf.constant(1.0, dtype)), list(EVENT))
    return tfd.TransformedDistribution(base, bijector)


def _data(n, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    # per-channel offsets and scales, so that ActNorm and the scales have something to learn
    return (rng.standard_normal((n,) + EVENT) * [0.5, 2.0] + [1.0, -1.0]).astype(dtype)


class FlowModel(keras.Model):
    """A Keras model around a TFP distribution: the flow's Keras layers are tracked by Keras."""

    def __init__(self, dist, **kwargs):
        super().__init__(**kwargs)
        self.dist = dist
        self.flow_layers = tg.bijectors.keras_layers(dist)
        # Keras 3 reports `self.metrics` in the history; a plain {"loss": ...} dict from
        # train_step is replaced by the (never updated) built-in loss tracker, i.e. 0.0.
        self.nll_tracker = keras.metrics.Mean(name="nll")

    @property
    def metrics(self):
        return [self.nll_tracker]

    def call(self, x):
        return self.dist.log_prob(x)

    def train_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(self.dist.log_prob(x))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        self.nll_tracker.update_state(loss)
        return {"nll": self.nll_tracker.result()}


def test_the_flow_uses_every_bijector_type():
    import inspect
    ours = {c for _, c in inspect.getmembers(tg.bijectors, inspect.isclass) if issubclass(c, tfb.Bijector)}
    assert ours <= bijector_types(make_dist().bijector)


def test_keras_fit_trains_the_same_variables_tfp_sees():
    dist = make_dist()
    model = FlowModel(dist)
    # the same tf.Variable objects, trainable and not (the actnorm state, the LU permutation)
    assert {id(w.value) for w in model.trainable_variables} == {id(v) for v in dist.trainable_variables}
    assert len(model.trainable_variables) == len(dist.trainable_variables) > 0
    assert {id(w.value) for w in model.variables} == {id(v) for v in dist.variables}
    assert {id(w.value) for w in model.non_trainable_variables} == \
        {id(v) for v in dist.variables} - {id(v) for v in dist.trainable_variables}

    x = _data(24, seed=0)
    tg.initialize_actnorm(dist.bijector, x[:8])
    # (by position: Keras paths repeat when two bijectors share a default name)
    before = [w.numpy().copy() for w in model.trainable_variables]
    frozen = [w.numpy().copy() for w in model.non_trainable_variables]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    history = model.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), epochs=1, shuffle=False, verbose=0)
    assert model.optimizer.iterations.numpy() == 3
    nll = history.history["nll"]
    assert len(nll) == 1 and np.isfinite(nll[0]) and nll[0] > 1.0

    unchanged = [w.path for w, b in zip(model.trainable_variables, before) if np.array_equal(w.numpy(), b)]
    assert not unchanged, f"not trained by model.fit: {unchanged}"
    for w, b in zip(model.non_trainable_variables, frozen):  # the actnorm flag, the LU sign/permutation
        np.testing.assert_array_equal(w.numpy(), b, err_msg=w.path)
    # TFP's view holds the trained values, and the model computes the distribution's density
    for v in dist.trainable_variables:
        assert any(np.array_equal(v.numpy(), w.numpy()) and v is w.value for w in model.trainable_variables)
    # (two tensor objects: TFP caches by input tensor, so one object would compare a cache hit)
    np.testing.assert_allclose(model(tf.constant(x[:8])), dist.log_prob(tf.constant(x[:8])), rtol=1e-6)


def test_zero_initialised_conditioners_block_only_hidden_layer_gradients_at_step_one():
    """At initialisation the last conditioner layers are zero: exactly the hidden layers of the
    coupling networks get a zero gradient; every other variable gets a non-zero one."""
    dist = make_dist()
    x = tf.constant(_data(8, seed=1))
    variables = list(dist.trainable_variables)
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(dist.log_prob(x))
    grads = tape.gradient(loss, variables)
    assert all(g is not None for g in grads)
    coupling_hidden = set()
    for b in dist.bijector.bijectors:
        if isinstance(b, (tg.AffineCoupling, tg.AdditiveCoupling, tg.SplineCoupling)):
            for layer in b.conditioner.layers[:-1]:
                coupling_hidden.update(id(w.value) for w in layer.weights)
        if isinstance(b, tg.MaskedAutoregressive):  # MADE: every layer but the (zero) output layer
            coupling_hidden.update(id(w.value) for w in b.conditioner.weights
                                   if not w.path.split("/")[-1].startswith("out_"))
        if isinstance(b, tg.bijectors.TransformerAutoregressive):  # every weight but the (zero) output projection
            coupling_hidden.update(id(w.value) for w in b.network.weights
                                   if not w.path.split("/")[-1].startswith("proj_out_"))
    # 3 couplings x 2 hidden convs x (kernel, bias) + MADE's hidden (kernel, bias) + the
    # transformer's input projection (2), positional embedding (1) and one layer (12)
    assert len(coupling_hidden) == 29
    for v, g in zip(variables, grads):
        zero = not np.any(np.asarray(g))
        assert zero == (id(v) in coupling_hidden), v.name


# NOTE on eager loops: TFP caches `inverse` and the log-dets by the *input tensor object*
# (eagerly too) and does not notice variable updates, so an eager loop that feeds the same
# tensor object every step gets the stale, tape-disconnected log-det from the first step.
# tfb.Scale(tf.Variable) behaves the same way: it is TFP's cache, not our bijectors. The
# eager loops below therefore feed a new tensor object each step (as a tf.data iterator
# does); inside tf.function each call gets fresh graph tensors, see the last test.

def test_plain_gradient_tape_loop_with_keras_adam():
    dist = make_dist()
    x_np = _data(16, seed=2)
    tg.initialize_actnorm(dist.bijector, x_np)
    variables = list(dist.trainable_variables)
    assert all(isinstance(v, tf.Variable) for v in variables)
    before = [v.numpy().copy() for v in variables]
    optimizer = keras.optimizers.Adam(1e-2)

    def nll(xb):
        return -tf.reduce_mean(dist.log_prob(xb))

    loss0 = float(nll(tf.constant(x_np)))
    losses = []
    for xb in tf.data.Dataset.from_tensors(x_np).repeat(8):  # a new tensor object per step
        with tf.GradientTape() as tape:
            loss = nll(xb)
        grads = tape.gradient(loss, variables)
        assert all(g is not None for g in grads)
        optimizer.apply(grads, variables)
        losses.append(float(loss))
    loss_end = float(nll(tf.constant(x_np)))
    assert abs(losses[0] - loss0) < 1e-3  # the first step reports the loss before the update
    assert np.all(np.isfinite(losses))
    assert loss_end < loss0 - 1.0, (loss0, losses, loss_end)
    unchanged = [v.name for v, b in zip(variables, before) if np.array_equal(v.numpy(), b)]
    assert not unchanged, f"not trained by the GradientTape loop: {unchanged}"


def test_manual_sgd_step_lowers_the_loss_as_its_gradient_predicts():
    """`v.assign_sub(lr * g)` on `dist.trainable_variables`: the loss falls by ~lr * |g|^2."""
    dist = make_dist()
    x_np = _data(16, seed=3)
    tg.initialize_actnorm(dist.bijector, x_np)
    variables = list(dist.trainable_variables)

    def loss_and_grads():
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(dist.log_prob(tf.constant(x_np)))  # fresh tensor: no stale cache
        return float(loss), tape.gradient(loss, variables)

    # one SGD step so the zero-initialised last layers move and every variable gets a gradient
    loss, grads = loss_and_grads()
    for v, g in zip(variables, grads):
        v.assign_sub(0.05 * g)
    loss, grads = loss_and_grads()
    assert all(np.any(np.asarray(g)) for g in grads), [v.name for v, g in zip(variables, grads)
                                                         if not np.any(np.asarray(g))]
    sq = sum(float(tf.reduce_sum(tf.cast(g, tf.float64) ** 2)) for g in grads)
    lr = 1e-3 / sq ** 0.5  # a step of length 1e-3 in parameter space
    before = [v.numpy().copy() for v in variables]
    for v, g in zip(variables, grads):
        v.assign_sub(lr * g)
    new_loss, _ = loss_and_grads()
    assert new_loss < loss
    np.testing.assert_allclose(loss - new_loss, lr * sq, rtol=0.1)
    for v, b in zip(variables, before):
        assert not np.array_equal(v.numpy(), b), v.name


def test_gradient_matches_finite_differences_in_float64_eagerly_and_in_tf_function():
    """The tape gradient of the NLL w.r.t. `dist.trainable_variables` vs a central difference
    along a random direction over all of them (float64); the tf.function version is fed the
    *same* tensor object at two different parameter values and must be right both times."""
    dist = make_dist(tf.float64, smooth=True)
    x_np = _data(8, seed=4, dtype=np.float64)
    tg.initialize_actnorm(dist.bijector, x_np)
    variables = list(dist.trainable_variables)
    rng = np.random.default_rng(0)
    for v in variables:  # move off the zero init so every path carries gradient
        v.assign_add(0.1 * rng.standard_normal(v.shape))

    def nll(xb):
        return -tf.reduce_mean(dist.log_prob(xb))

    def fd_directional(direction, eps=1e-6):
        for v, d in zip(variables, direction):
            v.assign_add(eps * d)
        up = float(nll(tf.constant(x_np)))
        for v, d in zip(variables, direction):
            v.assign_sub(2 * eps * d)
        down = float(nll(tf.constant(x_np)))
        for v, d in zip(variables, direction):
            v.assign_add(eps * d)
        return (up - down) / (2 * eps)

    @tf.function
    def graph_grads(xb):
        with tf.GradientTape() as tape:
            loss = nll(xb)
        return tape.gradient(loss, variables)

    x_same = tf.constant(x_np)
    for round_ in range(2):
        direction = [rng.standard_normal(v.shape) for v in variables]
        with tf.GradientTape() as tape:
            loss = nll(tf.constant(x_np))
        eager = tape.gradient(loss, variables)
        graph = graph_grads(x_same)
        want = fd_directional(direction)
        for grads in (eager, graph):
            got = sum(float(np.sum(np.asarray(g) * d)) for g, d in zip(grads, direction))
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"round {round_}")
        for v in variables:  # a training-like update before the second round
            v.assign_add(0.05 * rng.standard_normal(v.shape))

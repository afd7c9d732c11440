"""TFP's own `tfb.Glow` and `tfb.RealNVP`, built to match our models, as reference baselines.

These builders exist so the speed benchmark (`tfp_glow.bench`) and the quality comparison
(`examples/compare_tfp_digits.py`) can put TFP's reference implementations next to ours with
the same architecture and parameter count.

Why a plain `GradientTape` loop and not Keras `fit`: `tfb.Glow` builds its coupling networks
with TFP's bundled `tf_keras` (Keras 2) and holds its other parameters as bare `tf.Variable`s
(actnorm, 1x1 convolutions). Keras 3 tracks only Keras 3 variables and layers, so a Keras 3
model that holds a `tfb.Glow` sees none of its weights and `fit` would train nothing. The
`tf.Module` view (`distribution.trainable_variables`) does find them all, so the baseline is
trained by `make_train_step`: a `tf.function` around a `GradientTape`, with a `tf_keras` Adam
(the same algorithm and defaults as Keras 3's Adam, and it accepts raw `tf.Variable`s).

Two things `tfb.Glow` needs that our models do not (found while building the benchmark):

- **A known batch size.** Its `Reshape` bijectors mix int32 and int64 shape tensors, so
  tracing `log_prob` with an unknown batch dimension (`TensorSpec([None, H, W, C])`) fails
  with "Tensors in list passed to 'values' of 'ConcatV2' Op have types [int32, int64]".
  Every `tf.function` here is traced on concrete batches (no `input_signature`, no
  `reduce_retracing`), i.e. once per batch size.
- **Lazy actnorm initialisation.** TFP's `ActivationNormalization` initialises itself inside a
  `tf.cond` on an `initialized` variable the first time data passes, in whichever direction
  comes first, and under `tf.distribute` only on replica 0. `initialize_actnorm` runs that
  first pass eagerly on a fixed batch (data -> latent, the `log_prob` direction), before any
  step is traced, so the initialisation is explicit and happens outside XLA; the `tf.cond`
  stays in the traced graph but is then a no-op.

Architecture correspondence with our `glow(...)` (L levels, K steps, hidden width h):
`tfb.Glow(output_shape=[H, W, C], num_glow_blocks=L, num_steps_per_block=K,
coupling_bijector_fn=GlowDefaultNetwork(num_hidden=h), exit_bijector_fn=GlowDefaultExitNetwork,
grab_after_block=(0.5,) * (L - 1) + (0.,))`. Per step both have actnorm, an invertible 1x1
convolution and a coupling network `conv3x3(h)-relu-conv1x1(h)-relu-zeroconv3x3` on half the
channels; TFP's exit network is the same single zero-initialised 3x3 convolution as our split
prior. The differences in trainable parameters are small: our LU 1x1 conv trains `L`, `U`
and `log|diag|` (`2 C^2 + C`, `C^2 + C` more than TFP's packed `C x C` `lower_upper`), and
our learned top prior (a mean and a log-scale per top-level latent element) adds
`2 H W C / 2^(L-1)` (784 at 28x28x1, L=2), which TFP's Glow lacks. At the benchmark
default (28x28x1, L=2, K=4, h=400) ours has 1,547,292 and TFP's 1,546,140 (0.07% apart).
"""
import functools
import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import tf_keras as tfk  # TFP's bundled Keras 2

from tfp_glow import data as data_lib

tfb = tfp.bijectors
tfd = tfp.distributions


# ------------------------------------------------------------------------------------ Glow
def additive_glow_network(input_shape, num_hidden=400, kernel_shape=3):
    """`tfb.GlowDefaultNetwork` with `C` outputs instead of `2 C`: TFP's Glow then uses an
    additive coupling (`Shift` only). `tf_keras` layers, last layer zero-initialised."""
    kl = tfk.layers
    return tfk.Sequential([
        kl.Input(shape=input_shape),
        kl.Conv2D(num_hidden, kernel_shape, padding="same", activation="relu",
                  kernel_initializer=tfk.initializers.he_normal()),
        kl.Conv2D(num_hidden, 1, padding="same", activation="relu",
                  kernel_initializer=tfk.initializers.he_normal()),
        kl.Conv2D(input_shape[-1], kernel_shape, padding="same", kernel_initializer=tfk.initializers.zeros(),
                  bias_initializer=tfk.initializers.zeros()),
    ])


def tfp_glow_bijector(image_shape, levels=2, steps=4, hidden=400, coupling="affine", seed=0):
    """TFP's `tfb.Glow` configured like our `glow(image_shape, levels, steps, hidden, coupling)`.

    Args:
      image_shape: `[H, W, C]`, Python ints, H and W divisible by `2**levels`.
      levels: `num_glow_blocks` (our L).
      steps: `num_steps_per_block` (our K).
      hidden: `num_hidden` of the coupling networks (our `hidden_channels`).
      coupling: `affine` (`GlowDefaultNetwork`, `2 C` outputs) or `additive` (`C` outputs).
      seed: seed of the 1x1 convolution initialisation.

    Returns:
      A `tfb.Glow` whose `forward` maps a vector latent `[H*W*C]` to an image `[H, W, C]`.
    """
    image_shape = [int(d) for d in image_shape]
    if len(image_shape) != 3:
        raise ValueError(f"tfb.Glow needs an image shape [H, W, C]; received {image_shape}.")
    h, w, _ = image_shape
    f = 2 ** int(levels)
    if h % f or w % f:
        raise ValueError(f"tfb.Glow with {levels} levels needs H and W divisible by {f}; received {image_shape}.")
    if coupling == "affine":
        coupling_fn = functools.partial(tfb.GlowDefaultNetwork, num_hidden=int(hidden))
    elif coupling == "additive":
        coupling_fn = functools.partial(additive_glow_network, num_hidden=int(hidden))
    else:
        raise ValueError(f"coupling must be 'affine' or 'additive'; received {coupling!r}.")
    return tfb.Glow(output_shape=image_shape, num_glow_blocks=int(levels), num_steps_per_block=int(steps),
                    coupling_bijector_fn=coupling_fn, exit_bijector_fn=tfb.GlowDefaultExitNetwork,
                    grab_after_block=(0.5,) * (int(levels) - 1) + (0.0,), seed=seed)


def tfp_glow(image_shape, levels=2, steps=4, hidden=400, coupling="affine", seed=0):
    """`TransformedDistribution(N(0, I_D), tfb.Glow(...))` over images `[H, W, C]`.

    See `tfp_glow_bijector` for the arguments. Its `log_prob` takes dequantized images in
    `[-0.5, 0.5)` with a batch dimension known at trace time (see the module docstring).
    """
    bij = tfp_glow_bijector(image_shape, levels, steps, hidden, coupling, seed)
    latent = tf.TensorShape(bij.inverse_event_shape(list(image_shape))).as_list()
    return tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), latent), bij, name="tfp_glow")


# --------------------------------------------------------------------------------- RealNVP
class _ShiftAndLogScale:
    """`tf_keras` MLP giving `(shift, log_scale)` for `tfb.RealNVP`; the log-scale is bounded as
    `2 tanh(h / 2)` (as our RealNVP), and the last layer starts at zero (identity coupling)."""

    def __init__(self, num_masked, output_units, hidden_units, name):
        layers = [tfk.layers.Dense(u, activation="relu") for u in hidden_units]
        layers.append(tfk.layers.Dense(2 * output_units, kernel_initializer="zeros", bias_initializer="zeros"))
        self.net = tfk.Sequential(layers, name=name)
        self.net.build((None, num_masked))

    def __call__(self, x, output_units):
        shift, raw = tf.split(self.net(x), 2, axis=-1)
        return shift, 2.0 * tf.tanh(raw / 2.0)


def tfp_realnvp_bijector(event_shape, couplings=6, hidden_units=(256, 256), seed=0):
    """A stack of TFP `tfb.RealNVP` couplings on the flattened event.

    `tfb.RealNVP` masks the leading `num_masked` entries of the last axis, so images are
    flattened to `[D]` first (a `tfb.Reshape`); each coupling transforms half of the vector
    conditioned on the other half through an MLP (`_ShiftAndLogScale`), and a fixed random
    `tfb.Permute` between couplings changes which half conditions.

    Args:
      event_shape: `[H, W, C]` or `[D]`.
      couplings: number of `tfb.RealNVP` layers.
      hidden_units: MLP widths.
      seed: seed of the permutations.

    Returns:
      A bijector whose `forward` maps a latent `[D]` to data of `event_shape`.
    """
    event_shape = [int(d) for d in event_shape]
    d = int(np.prod(event_shape))
    rng = np.random.default_rng(seed)
    parts = []  # latent -> data order is reversed below
    nets = []
    for k in range(couplings):
        net = _ShiftAndLogScale(d // 2, d - d // 2, tuple(hidden_units), name=f"tfp_realnvp_net{k}")
        nets.append(net.net)
        parts.append(tfb.RealNVP(num_masked=d // 2, shift_and_log_scale_fn=net, name=f"tfp_realnvp{k}"))
        if k + 1 < couplings:
            parts.append(tfb.Permute(permutation=rng.permutation(d).astype(np.int32), name=f"permute{k}"))
    if len(event_shape) != 1:
        parts.append(tfb.Reshape(event_shape_out=event_shape, event_shape_in=[d]))
    bij = tfb.Chain(parts[::-1], name="tfp_realnvp")
    bij._tracked_networks = nets  # tf.Module tracking of the tf_keras networks
    return bij


def tfp_realnvp(event_shape, couplings=6, hidden_units=(256, 256), seed=0):
    """`TransformedDistribution(N(0, I_D), tfp_realnvp_bijector(...))`."""
    d = int(np.prod(event_shape))
    bij = tfp_realnvp_bijector(event_shape, couplings, hidden_units, seed)
    return tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), [d]), bij, name="tfp_realnvp")


# ------------------------------------------------------------------------------ training
def count_parameters(distribution):
    """Trainable scalars in `distribution.trainable_variables` (the `tf.Module` view)."""
    return int(sum(int(np.prod(v.shape)) for v in distribution.trainable_variables))


def dequantize_batch(x_uint8, n_bits, seed=None):
    """Our dequantization (`tfp_glow.data`): 8-bit levels -> `n_bits` -> `[-0.5, 0.5)`."""
    return data_lib.dequantize(data_lib.reduce_bits(x_uint8, n_bits), n_bits, seed=seed)


def bits_per_dim(log_prob, num_dims, n_bits):
    """The discrete-data bound (docs/design.md, Metrics): `(-log p + D n_bits ln 2) / (D ln 2)`."""
    return (-log_prob + num_dims * n_bits * math.log(2.0)) / (num_dims * math.log(2.0))


def initialize_actnorm(distribution, x_uint8, n_bits=8, seed=(1234, 0)):
    """Run TFP's lazy actnorm initialisation eagerly, on one fixed batch, before tracing.

    TFP's `ActivationNormalization` initialises from the first tensor it sees (inside a
    `tf.cond`); this makes that first tensor a known batch with fixed dequantization noise,
    flowing data -> latent (`log_prob`). A no-op for models without actnorm.

    Args:
      distribution: a `TransformedDistribution` from `tfp_glow(...)` (or any distribution).
      x_uint8: uint8 images `[N, H, W, C]`.
      n_bits: bit depth.
      seed: stateless seed of the fixed noise.
    """
    x = dequantize_batch(tf.convert_to_tensor(x_uint8), n_bits, seed=tf.constant(seed, tf.int32))
    return distribution.log_prob(x)


def make_optimizer(learning_rate=1e-3):
    """`tf_keras` Adam: Keras 3's Adam does not accept the bare `tf.Variable`s of `tfb.Glow`."""
    return tfk.optimizers.Adam(learning_rate)


def make_train_step(distribution, optimizer, n_bits=8, jit_compile=True):
    """A `tf.function` training step for a TFP distribution: dequantize, mean bits/dim, Adam.

    The same math as `FlowModel.train_step` (fresh uniform noise each step, loss = mean
    bits/dim), written as a plain `GradientTape` loop over `distribution.trainable_variables`
    because Keras 3 cannot see `tfb.Glow`'s variables (module docstring).

    Args:
      distribution: a TFP distribution over images `[H, W, C]`.
      optimizer: e.g. `make_optimizer()`.
      n_bits: bit depth.
      jit_compile: XLA.

    Returns:
      `step(x_uint8) -> loss` (traced once per batch shape; TFP's Glow needs a known batch).
    """
    variables = distribution.trainable_variables
    num_dims = int(np.prod(distribution.event_shape))

    @tf.function(jit_compile=jit_compile)
    def step(x_uint8):
        x = dequantize_batch(x_uint8, n_bits)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(bits_per_dim(distribution.log_prob(x), num_dims, n_bits))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    return step


def make_eval_fn(distribution, n_bits=8, seed=(1234, 0), jit_compile=False):
    """`bpd(x_uint8)` per example with fixed dequantization noise (repeatable test figures)."""
    num_dims = int(np.prod(distribution.event_shape))

    @tf.function(jit_compile=jit_compile)
    def bpd(x_uint8):
        x = dequantize_batch(x_uint8, n_bits, seed=tf.constant(seed, tf.int32))
        return bits_per_dim(distribution.log_prob(x), num_dims, n_bits)

    return bpd

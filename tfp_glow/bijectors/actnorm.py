"""ActNorm: a per-channel affine map with data-dependent initialisation (Glow)."""
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow.bijectors._util import FusedLogDetMixin, check_channels, keras_variables

tfb = tfp.bijectors


class ActNormParameters(keras.layers.Layer):
    """Keras holder of ActNorm's weights: `log_scale [C]`, `bias [C]`, `initialized []`."""

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.log_scale = self.add_weight(shape=(self.channels,), initializer="zeros", name="log_scale")
        self.bias = self.add_weight(shape=(self.channels,), initializer="zeros", name="bias")
        # Saved with the weights, so a reloaded model is not initialised twice.
        self.initialized = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                           name="initialized")
        self.built = True

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


class ActNorm(FusedLogDetMixin, tfb.Bijector):
    """ActNorm: `x = z * exp(log_scale) + bias` per channel; `log|det J| = sum(log_scale)` per
    position (TFP multiplies by `H * W` for an image event).

    `forward` and `inverse` are pure maps. Data-dependent initialisation is an explicit step,
    `initialize(x)` (or `initialize_actnorm(bijector, x)` for every ActNorm of a flow), which sets `bias = mean(x)` and
    `log_scale = log std(x)` over every axis but the channel axis, so the batch leaves the
    inverse (data -> latent) with zero mean and unit variance per channel. A channel of zero
    variance keeps `log_scale = 0` (no NaN, no infinity). Variables are Keras weights of an
    `ActNormParameters` layer and are also exposed as `tf.Variable`s to `tf.Module`.

    With `pooled_init`, the initialisation pools the statistics over the channel axis too: every
    channel starts with the same bias and scale, which normalise the batch as a whole. That is
    for flattened images, where each pixel is a channel: a pixel that is dark in every image of
    the batch has a standard deviation of the dequantization noise alone (about 0.001), and
    per-channel statistics would scale it up about 900-fold, so that the rare image with ink
    there gets thousands of bits/dim. The parameters are per channel either way and train.

    Args:
      channels: Python int, size of the last axis `C`; inputs are `[..., C]`.
      validate_args: TFP flag.
      dtype: float dtype; parameters stay in this dtype under mixed precision.
      name: name scope.
      pooled_init: initialise every channel from statistics over all axes (flattened images).

    References:
      Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", NeurIPS 2018.
    """

    def __init__(self, channels, validate_args=False, dtype=tf.float32, name="actnorm", pooled_init=False):
        parameters = dict(locals())
        with tf.name_scope(name) as scope_name:
            self._channels = int(channels)
            self._pooled_init = bool(pooled_init)
            if self._channels < 1:
                raise ValueError(f"ActNorm needs channels >= 1; received {channels!r}.")
            self._params = ActNormParameters(self._channels, dtype=tf.as_dtype(dtype).name, name=name)
            self._variables = keras_variables(self._params)
            self._log_scale, self._bias, self._initialized = self._variables
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args, dtype=dtype,
                             parameters=parameters, name=scope_name)

    @property
    def parameters_layer(self):
        return self._params

    @property
    def is_initialized(self):
        return bool(self._initialized.numpy() > 0)

    def initialize(self, x, inverse_side=True):
        """Set the parameters from a batch so it is normalised in the data -> latent direction.

        Args:
          x: tensor `[..., C]`: the data entering this layer's `inverse` (or, with
            `inverse_side=False`, the latent entering `forward`, as under `tfb.Invert`).
          inverse_side: which side of the map `x` is on.
        """
        check_channels(x, self._channels, self.name)
        x = tf.cast(x, self.dtype)
        axes = list(range(x.shape.rank if self._pooled_init else x.shape.rank - 1))
        mean, var = tf.nn.moments(x, axes=axes)
        if self._pooled_init:
            mean, var = tf.fill([self._channels], mean), tf.fill([self._channels], var)
        # A constant channel shows a variance of rounding size (~(eps * mean)^2), not 0: treat
        # anything below that floor as zero variance and keep unit scale there.
        info = np.finfo(self.dtype.as_numpy_dtype)
        floor = tf.square(16.0 * info.eps * tf.abs(mean)) + info.tiny ** 0.5
        log_std = tf.where(var > floor, 0.5 * tf.math.log(tf.maximum(var, floor)), tf.zeros_like(var))
        if inverse_side:  # z = (x - b) e^{-s} has mean 0, var 1
            self._bias.assign(mean)
            self._log_scale.assign(log_std)
        else:  # x = z e^{s} + b has mean 0, var 1
            self._log_scale.assign(-log_std)
            self._bias.assign(-mean * tf.exp(-log_std))
        self._initialized.assign(tf.ones_like(self._initialized))

    def _forward(self, z):
        check_channels(z, self._channels, self.name)
        return z * tf.exp(self._log_scale) + self._bias

    def _inverse(self, x):
        check_channels(x, self._channels, self.name)
        return (x - self._bias) * tf.exp(-self._log_scale)

    def _forward_log_det_jacobian(self, z):
        check_channels(z, self._channels, self.name)
        # Constant in z: a scalar that TFP broadcasts and multiplies by the H*W positions.
        return tf.reduce_sum(self._log_scale)

    def _inverse_log_det_jacobian(self, x):
        check_channels(x, self._channels, self.name)
        return -tf.reduce_sum(self._log_scale)

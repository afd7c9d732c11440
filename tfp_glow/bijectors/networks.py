"""Default conditioner networks for coupling layers and split priors.

Every network ends in a zero-initialised layer, so a freshly built coupling starts with zero
shift and zero raw scale (the identity for additive and `tanh`/`exp` scales).

References:
  Kingma & Dhariwal, "Glow", NeurIPS 2018 (NN(): conv3x3-relu-conv1x1-relu-zeroconv3x3).
  Dinh et al., "Density estimation using Real NVP", ICLR 2017.
"""
import keras


def conv_net(out_channels, hidden_channels=512, dtype=None, name=None):
    """Glow's coupling network: `conv3x3(h) -> relu -> conv1x1(h) -> relu -> conv3x3_zeros(out)`.

    Args:
      out_channels: Python int, channels of the output `[N, H, W, out_channels]`.
      hidden_channels: Python int, width of the hidden convolutions.
      dtype: Keras dtype or policy name; `None` follows the global policy (mixed precision).
      name: layer name (the coupling's, so weights read `level0_step3_coupling/conv_in/kernel`).

    Returns:
      A `keras.Sequential` mapping `[N, H, W, C_in]` to `[N, H, W, out_channels]`.
    """
    return keras.Sequential([
        keras.layers.Conv2D(hidden_channels, 3, padding="same", activation="relu", dtype=dtype, name="conv_in"),
        keras.layers.Conv2D(hidden_channels, 1, padding="same", activation="relu", dtype=dtype, name="conv_hidden"),
        keras.layers.Conv2D(out_channels, 3, padding="same", kernel_initializer="zeros",
                            bias_initializer="zeros", dtype=dtype, name="conv_out"),
    ], name=name)


def mlp_net(out_dim, hidden_units=(256, 256), activation="relu", dtype=None, name=None):
    """A fully connected conditioner: `dense(h) -> act -> ... -> dense_zeros(out_dim)`.

    Args:
      out_dim: Python int, size of the output `[N, out_dim]`.
      hidden_units: tuple of Python ints, one hidden layer each (NICE used 5 x 1000).
      activation: Keras activation of the hidden layers.
      dtype: Keras dtype or policy name; `None` follows the global policy.
      name: layer name.

    Returns:
      A `keras.Sequential` mapping `[N, D_in]` to `[N, out_dim]`.
    """
    layers = [keras.layers.Dense(h, activation=activation, dtype=dtype, name=f"dense_{i}")
              for i, h in enumerate(hidden_units)]
    layers.append(keras.layers.Dense(out_dim, kernel_initializer="zeros", bias_initializer="zeros",
                                     dtype=dtype, name="dense_out"))
    return keras.Sequential(layers, name=name)


def zero_conv(out_channels, kernel_size=3, dtype=None, name=None):
    """A single zero-initialised convolution (Glow's `conv2d_zeros`), used by split priors.

    Args:
      out_channels: Python int.
      kernel_size: Python int.
      dtype: Keras dtype; priors pass float32 so they stay out of mixed precision.
      name: layer name.
    """
    return keras.layers.Conv2D(out_channels, kernel_size, padding="same", kernel_initializer="zeros",
                               bias_initializer="zeros", dtype=dtype, name=name)


@keras.saving.register_keras_serializable(package="tfp_glow")
class ChannelParameters(keras.layers.Layer):
    """Learned per-channel outputs that ignore the input's values: `y = w * exp(f * v)`,
    broadcast to `[N, H, W, out_channels]` for an input `[N, H, W, C_in]`.

    With `w` and `v` zero-initialised this is openai/glow's `logscale_factor` parametrisation
    (`f = 3`), which normflows' `GlowBase` uses for its per-channel mean and log-scale: the
    factor speeds up learning of the few parameters. As a split prior's conditioner it gives
    `N(mu_c, sigma_c^2)` per channel, shared over positions and unconditional.

    Args:
      out_channels: Python int.
      logscale_factor: `f`, a Python float.
    """

    def __init__(self, out_channels, logscale_factor=3.0, **kwargs):
        super().__init__(**kwargs)
        self.out_channels = int(out_channels)
        self.logscale_factor = float(logscale_factor)
        self.w = self.add_weight(shape=(self.out_channels,), initializer="zeros", name="w")
        self.v = self.add_weight(shape=(self.out_channels,), initializer="zeros", name="v")

    def call(self, x):
        params = self.w * keras.ops.exp(self.logscale_factor * self.v)
        return keras.ops.zeros_like(x[..., :1]) + keras.ops.cast(params, x.dtype)

    def get_config(self):
        return {**super().get_config(), "out_channels": self.out_channels, "logscale_factor": self.logscale_factor}


@keras.saving.register_keras_serializable(package="tfp_glow")
class ScaledZeroConv2D(keras.layers.Layer):
    """openai/glow's `conv2d_zeros`: `y = conv(x) * exp(f * s)`, kernel, bias and `s` zero-initialised.

    The per-output-channel log-scale `s` (times `logscale_factor` f = 3) lets the few output
    channels of a zero-initialised layer grow faster than Adam's step size alone allows.

    Args:
      out_channels: Python int.
      kernel_size: Python int.
      logscale_factor: `f`, a Python float.

    References:
      Kingma & Dhariwal, "Glow", NeurIPS 2018 (openai/glow `model.py`, `conv2d_zeros`).
    """

    def __init__(self, out_channels, kernel_size=3, logscale_factor=3.0, **kwargs):
        super().__init__(**kwargs)
        self.out_channels, self.kernel_size = int(out_channels), int(kernel_size)
        self.logscale_factor = float(logscale_factor)
        self.conv = keras.layers.Conv2D(self.out_channels, self.kernel_size, padding="same",
                                        kernel_initializer="zeros", bias_initializer="zeros", dtype=self.dtype_policy,
                                        name="conv")
        self.logs = self.add_weight(shape=(self.out_channels,), initializer="zeros", name="logs")

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, x):
        return self.conv(x) * keras.ops.cast(keras.ops.exp(self.logscale_factor * self.logs), self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "out_channels": self.out_channels, "kernel_size": self.kernel_size,
                "logscale_factor": self.logscale_factor}

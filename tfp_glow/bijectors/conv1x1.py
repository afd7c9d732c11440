"""Invertible 1x1 convolution (Glow), plain or LU-parametrised."""
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow.bijectors._util import FusedLogDetMixin, check_channels, keras_variables

tfb = tfp.bijectors


def random_rotation(channels, seed=None):
    """A random orthogonal `[C, C]` matrix (QR of a Gaussian, signs fixed), as Glow initialises."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((channels, channels)))
    return q * np.sign(np.diag(r))[None, :]


def lu_decompose(w):
    """`w = p @ l @ u`: LU decomposition with partial pivoting (as LAPACK's getrf, scipy.linalg.lu).

    Gaussian elimination that, at column `k`, swaps up the row with the largest `|w[i, k]|`
    (i >= k). `p` is a permutation matrix, `l` unit lower-triangular with `|l[i, j]| <= 1`, `u`
    upper-triangular. numpy only, so the core install needs no scipy.

    Args:
      w: `[C, C]` array.

    Returns:
      `(p, l, u)`, float64 `[C, C]` each.

    References:
      Golub and Van Loan, Matrix Computations (4th ed.), Algorithm 3.4.1.
    """
    a = np.array(w, dtype=np.float64)
    n = a.shape[0]
    if a.ndim != 2 or a.shape[1] != n:
        raise ValueError(f"lu_decompose needs a square matrix; got shape {a.shape}")
    rows = np.arange(n)  # a (as reduced so far) is w[rows]
    l = np.eye(n)
    for k in range(n - 1):
        i = k + int(np.argmax(np.abs(a[k:, k])))
        if i != k:  # partial pivoting: the largest pivot keeps |l| <= 1
            a[[k, i]] = a[[i, k]]
            l[[k, i], :k] = l[[i, k], :k]
            rows[[k, i]] = rows[[i, k]]
        if a[k, k] != 0.0:
            f = a[k + 1:, k] / a[k, k]
            l[k + 1:, k] = f
            a[k + 1:, k:] -= np.outer(f, a[k, k:])
    # w[rows] = l @ u, so w = p @ l @ u with p[rows[j], j] = 1.
    p = np.zeros((n, n))
    p[rows, np.arange(n)] = 1.0
    return p, l, np.triu(a)


def _per_pixel_matmul(v, w):
    """`v @ w^T` over the last axis, `[..., C] -> [..., C]`: one `[N*H*W, C] x [C, C]` matmul.

    Same as `tf.einsum("...c,dc->...d", v, w)`, but TF's oneDNN einsum kernel is many times
    slower than a plain matmul on these small channel counts (docs/measurements/speed.md).
    """
    c = w.shape[-1]
    out = tf.matmul(tf.reshape(v, [-1, c]), w, transpose_b=True)
    out = tf.reshape(out, tf.shape(v))
    out.set_shape(v.shape)
    return out


class Conv1x1Parameters(keras.layers.Layer):
    """Keras holder of the 1x1 convolution's weights.

    Plain: `kernel [C, C]`. LU: `lower [C, C]`, `upper [C, C]`, `log_diag [C]` (trainable) and
    `sign [C]`, `permutation [C]` (fixed). Off-triangle entries of `lower`/`upper` are masked
    in use, so any values there are harmless.
    """

    def __init__(self, channels, lu=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.lu, self.seed = int(channels), bool(lu), seed
        w = random_rotation(self.channels, seed)
        const = keras.initializers.Constant
        if self.lu:
            p, l, u = lu_decompose(w)  # w = p @ l @ u
            diag = np.diag(u)
            self.permutation = self.add_weight(shape=(self.channels,), dtype="int32", trainable=False,
                                               initializer=const(np.argmax(p, axis=1)), name="permutation")
            self.sign = self.add_weight(shape=(self.channels,), trainable=False,
                                        initializer=const(np.sign(diag)), name="sign")
            self.lower = self.add_weight(shape=(self.channels, self.channels), initializer=const(l), name="lower")
            self.upper = self.add_weight(shape=(self.channels, self.channels), initializer=const(u), name="upper")
            self.log_diag = self.add_weight(shape=(self.channels,), initializer=const(np.log(np.abs(diag))),
                                            name="log_diag")
        else:
            self.kernel = self.add_weight(shape=(self.channels, self.channels), initializer=const(w),
                                          name="kernel")
        self.built = True

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "lu": self.lu, "seed": self.seed}


class InvertibleConv1x1(FusedLogDetMixin, tfb.Bijector):
    """Invertible 1x1 convolution: `x = W z` at every position; `log|det J| = log|det W|` per
    position (TFP multiplies by `H * W` for an image event).

    LU form: `W = P L (U + diag(sign * exp(log_diag)))` with `P` a fixed permutation, `L` unit
    lower-triangular and `U` strictly upper-triangular, so `log|det W| = sum(log_diag)` and the
    inverse needs two triangular solves of a `C x C` matrix per call, never per pixel. The plain
    form uses `log|det W|` (from a QR decomposition, which XLA compiles, unlike `slogdet`)
    and `inv` of `W`. Both start from a random rotation.

    Args:
      channels: Python int `C`; inputs are `[..., C]`.
      lu: use the LU parametrisation (default, faster).
      seed: seed of the random rotation.
      validate_args: TFP flag.
      dtype: float dtype; stays float32 under mixed precision.
      name: name scope.

    References:
      Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", NeurIPS 2018.
    """

    def __init__(self, channels, lu=True, seed=None, validate_args=False, dtype=tf.float32,
                 name="invertible_conv1x1"):
        parameters = dict(locals())
        with tf.name_scope(name) as scope_name:
            self._channels = int(channels)
            if self._channels < 1:
                raise ValueError(f"InvertibleConv1x1 needs channels >= 1; received {channels!r}.")
            self._lu = bool(lu)
            self._params = Conv1x1Parameters(self._channels, lu=lu, seed=seed,
                                             dtype=tf.as_dtype(dtype).name, name=name)
            self._variables = keras_variables(self._params)
            # The tf.Variables themselves: reading them never autocasts under a mixed policy.
            self._v = {w.name: w.value for w in self._params.weights}
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args, dtype=dtype,
                             parameters=parameters, name=scope_name)

    @property
    def parameters_layer(self):
        return self._params

    def _lu_factors(self):
        p = self._v
        c = self._channels
        lower = tf.linalg.set_diag(tf.linalg.band_part(p["lower"], -1, 0), tf.ones((c,), self.dtype))
        upper = tf.linalg.set_diag(tf.linalg.band_part(p["upper"], 0, -1), p["sign"] * tf.exp(p["log_diag"]))
        perm = tf.one_hot(p["permutation"], c, dtype=self.dtype)  # perm[i, permutation[i]] = 1
        return perm, lower, upper

    def weight(self):
        """The `[C, C]` matrix `W` (data-side = `W @ latent-side`)."""
        if not self._lu:
            return self._v["kernel"]
        perm, lower, upper = self._lu_factors()
        return perm @ lower @ upper

    def inverse_weight(self):
        """`W^{-1}`, from triangular solves on the LU factors (or `inv` for the plain form)."""
        if not self._lu:
            return tf.linalg.inv(self._v["kernel"])
        perm, lower, upper = self._lu_factors()
        # W^-1 = U^-1 L^-1 P^T
        l_inv_pt = tf.linalg.triangular_solve(lower, tf.transpose(perm), lower=True)
        return tf.linalg.triangular_solve(upper, l_inv_pt, lower=False)

    def log_abs_det(self):
        if self._lu:
            return tf.reduce_sum(self._v["log_diag"])
        # log|det W| = sum log|diag R| of W = QR: slogdet's value, and XLA compiles QR.
        r = tf.linalg.qr(self._v["kernel"], full_matrices=True).r
        return tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(r))))

    def _forward(self, z):
        check_channels(z, self._channels, self.name)
        return _per_pixel_matmul(z, self.weight())

    def _inverse(self, x):
        check_channels(x, self._channels, self.name)
        return _per_pixel_matmul(x, self.inverse_weight())

    def _forward_log_det_jacobian(self, z):
        check_channels(z, self._channels, self.name)
        return self.log_abs_det()

    def _inverse_log_det_jacobian(self, x):
        check_channels(x, self._channels, self.name)
        return -self.log_abs_det()

"""Masked autoregressive flows (MAF, IAF) on a Keras 3 MADE network, affine or spline.

Direction: `forward` maps latent `z` to data `x` (sampling); `inverse` maps data to latent.
MAF conditions each element on the *data* before it in the order, so `inverse` (density) is
one network call and `forward` (sampling) needs one call per dimension. IAF is its inverse:
it conditions on the *latent*, so `forward` is one call and `inverse` is sequential.
"""
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow.bijectors._util import (AugmentedBijectorMixin, apply_on_events, check_event_shape, keras_variables,
                                      layer_dtype)
from tfp_glow.bijectors.bounds import bounded_log_scale
from tfp_glow.bijectors.spline import (DEFAULT_MIN_BIN_HEIGHT, DEFAULT_MIN_BIN_WIDTH, DEFAULT_MIN_DERIVATIVE,
                                       check_spline_args, num_spline_params, rational_quadratic_spline, spline_params)

tfb = tfp.bijectors

TRANSFORMS = ("affine", "spline")


def check_order(order, size):
    """`order` as a tuple of ints if it is a permutation of `range(size)`, else a `ValueError`.

    `order[k]` is the dimension that comes k-th: it is conditioned on `order[:k]`.
    """
    if order is None:
        return tuple(range(size))
    try:
        values = [int(o) for o in order]
        ok = all(float(o) == int(o) for o in order) and sorted(values) == list(range(size))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"order must be a permutation of range({size}); received {order!r}.")
    return tuple(values)


def made_degrees(order, hidden_units):
    """Degrees of MADE's units: input `i` has degree `1 + position of i in order`; hidden units
    cycle through `1 .. D - 1` (Germain et al.'s deterministic assignment)."""
    d = len(order)
    inputs = np.empty(d, np.int64)
    inputs[list(order)] = np.arange(1, d + 1)
    hidden = [np.arange(h) % max(d - 1, 1) + 1 for h in hidden_units]
    return inputs, hidden


def made_masks(order, hidden_units, params):
    """0/1 kernel masks (`[in, out]`) of MADE's dense layers.

    A hidden unit of degree `m` sees inputs of degree `<= m`; output unit `(i, p)` (dimension
    `i`, parameter `p`, laid out as `i * params + p`) sees units of degree `< degree(i)`, so
    output `i` depends on the inputs before `i` in the order only.
    """
    inputs, hidden = made_degrees(order, hidden_units)
    masks, prev = [], inputs
    for h in hidden:
        masks.append((h[None, :] >= prev[:, None]).astype(np.float32))
        prev = h
    out = np.repeat(inputs, params)
    masks.append((out[None, :] > prev[:, None]).astype(np.float32))
    return masks


class MADE(keras.layers.Layer):
    """Masked autoencoder for distribution estimation: `[N, D] -> [N, D, P]`, where output
    `[:, i, :]` depends only on the inputs before `i` in `order`.

    `h_1 = act(x (W_1 * M_1) + b_1)`, ..., `out = h_L (W_out * M_out) + b_out`; the masks `M`
    come from unit degrees (`made_masks`). The output layer is zero-initialised, so a flow
    step built on it starts as the identity.

    Args:
      event_size: D, Python int.
      params: P, outputs per dimension.
      hidden_units: tuple of Python ints, one masked hidden layer each.
      order: a permutation of `range(D)` (default: `0, 1, ..., D - 1`).
      activation: Keras activation of the hidden layers.
      **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`).

    Raises:
      ValueError: `order` is not a permutation of `range(D)`, or sizes are not positive.

    References:
      Germain, Gregor, Murray & Larochelle, "MADE: Masked Autoencoder for Distribution
      Estimation", ICML 2015.
    """

    def __init__(self, event_size, params, hidden_units=(64, 64), order=None, activation="relu", **kwargs):
        super().__init__(**kwargs)
        if isinstance(event_size, bool) or not isinstance(event_size, (int, np.integer)) or event_size < 1:
            raise ValueError(f"event_size must be a positive int; received {event_size!r}.")
        if isinstance(params, bool) or not isinstance(params, (int, np.integer)) or params < 1:
            raise ValueError(f"params must be a positive int; received {params!r}.")
        hidden_units = tuple(int(h) for h in hidden_units)
        if any(h < 1 for h in hidden_units):
            raise ValueError(f"hidden_units must be positive ints; received {hidden_units!r}.")
        self.event_size, self.params, self.hidden_units = int(event_size), int(params), hidden_units
        self.order = check_order(order, self.event_size)
        self.activation = keras.activations.get(activation)
        self._activation_name = activation if isinstance(activation, str) else None
        self._masks = made_masks(self.order, hidden_units, self.params)
        sizes = (self.event_size,) + hidden_units + (self.event_size * self.params,)
        self.kernels, self.biases = [], []
        for k in range(len(sizes) - 1):
            last = k == len(sizes) - 2
            name = "out" if last else f"hidden_{k}"
            init = "zeros" if last else "glorot_uniform"
            self.kernels.append(self.add_weight(shape=(sizes[k], sizes[k + 1]), initializer=init,
                                                name=f"{name}_kernel"))
            self.biases.append(self.add_weight(shape=(sizes[k + 1],), initializer="zeros", name=f"{name}_bias"))
        self.built = True

    def masks(self):
        """The 0/1 masks, `[in, out]` per layer (numpy)."""
        return [m.copy() for m in self._masks]

    def call(self, x):
        h = keras.ops.cast(x, self.compute_dtype)
        n = len(self.kernels)
        for k, (w, b, m) in enumerate(zip(self.kernels, self.biases, self._masks)):
            h = keras.ops.matmul(h, w * keras.ops.cast(m, w.dtype)) + b
            if k < n - 1:
                h = self.activation(h)
        return keras.ops.reshape(h, (-1, self.event_size, self.params))

    def get_config(self):
        return {**super().get_config(), "event_size": self.event_size, "params": self.params,
                "hidden_units": self.hidden_units, "order": self.order,
                "activation": self._activation_name or keras.activations.serialize(self.activation)}


class MaskedAutoregressive(AugmentedBijectorMixin, tfb.Bijector):
    """Masked autoregressive flow: `x_i = tau(z_i; theta_i(x_{<i}))` (MAF), or its inverse
    `x_i = tau^{-1}(z_i; theta_i(z_{<i}))` (IAF, `inverse_autoregressive=True`), in `order`.

    `tau` is elementwise, with parameters `theta_i` from one MADE call:
    - `affine`: `tau(z) = z exp(log s) + t`, `log s = b tanh(h / b)` (bounded, 0 at init);
      `log|det J| = sum log s`;
    - `spline`: a rational-quadratic spline with K bins on `[-B, B]`, the identity outside
      (`spline.rational_quadratic_spline`); `log|det J| = sum log tau'(z)`.

    MAF's `inverse` (data -> latent, `log_prob`) is one network call; its `forward` (sampling)
    runs the network D times (a Python loop over the static event size: after step k the first
    k dimensions in the order are exact), as TFP's `MaskedAutoregressiveFlow` does. IAF swaps
    the two costs. The event `[D]` or `[H, W, C]` is flattened to D values in row-major order.

    Args:
      event_shape: tuple of Python ints, `[D]` or `[H, W, C]`.
      transform: `affine` or `spline`.
      order: a permutation of `range(D)` (default `0 .. D - 1`); `order[k]` is conditioned on
        `order[:k]`.
      hidden: tuple of hidden units of the default MADE.
      inverse_autoregressive: IAF instead of MAF.
      bins, bound: spline bins K >= 2 and bound B > 0 (spline only).
      scale_bound: b of the affine log-scale.
      conditioner: a `MADE` (or a callable with its contract, `[N, D] -> [N, D, P]`,
        autoregressive in `order`) with `P = 2` (affine: shift, raw log-scale) or `3K - 1`.
      activation: activation of the default MADE's hidden layers.
      min_bin_width, min_bin_height, min_derivative: spline constraints (`spline.spline_params`).
      validate_args: TFP flag.
      dtype: float dtype of the flow.
      name: name scope.

    Raises:
      ValueError: an unknown transform, an order that is not a permutation, `bins < 2`,
        `bound <= 0`, or a conditioner with the wrong output shape.

    References:
      Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow for Density Estimation", NeurIPS 2017.
      Kingma et al., "Improved Variational Inference with Inverse Autoregressive Flow", NeurIPS 2016.
      Durkan et al., "Neural Spline Flows", NeurIPS 2019.
    """

    def __init__(self, event_shape, transform="affine", order=None, hidden=(64, 64), inverse_autoregressive=False,
                 bins=8, bound=3.0, scale_bound=2.0, conditioner=None, activation="relu",
                 min_bin_width=DEFAULT_MIN_BIN_WIDTH, min_bin_height=DEFAULT_MIN_BIN_HEIGHT,
                 min_derivative=DEFAULT_MIN_DERIVATIVE, validate_args=False, dtype=tf.float32,
                 name="masked_autoregressive"):
        parameters = dict(locals())
        with tf.name_scope(name) as scope_name:
            self._event_shape_in = tuple(int(d) for d in event_shape)
            if not self._event_shape_in or min(self._event_shape_in) < 1:
                raise ValueError(f"event_shape must be positive ints; received {event_shape!r}.")
            self._size = int(np.prod(self._event_shape_in))
            if transform not in TRANSFORMS:
                raise ValueError(f"transform must be one of {TRANSFORMS}; received {transform!r}.")
            self._transform_kind = transform
            self._order = check_order(order, self._size)
            self._iaf = bool(inverse_autoregressive)
            if transform == "spline":
                self._bins, self._bound = check_spline_args(bins, bound, min_bin_width, min_bin_height,
                                                            min_derivative)
                self._mins = (float(min_bin_width), float(min_bin_height), float(min_derivative))
                self._n_params = num_spline_params(self._bins)
            else:
                if not (isinstance(scale_bound, (int, float)) and scale_bound > 0):
                    raise ValueError(f"scale_bound must be a positive float; received {scale_bound!r}.")
                self._scale_bound = float(scale_bound)
                self._n_params = 2
            if conditioner is None:
                conditioner = MADE(self._size, self._n_params, hidden_units=tuple(hidden), order=self._order,
                                   activation=activation, dtype=layer_dtype(dtype), name=name)
            if not callable(conditioner):
                raise ValueError(f"conditioner must be a Keras layer or a callable; received {conditioner!r}.")
            if isinstance(conditioner, MADE) and conditioner.order != self._order:
                raise ValueError(f"{name}: the conditioner's order {conditioner.order} differs from order "
                                 f"{self._order}.")
            self._conditioner = conditioner
            probe = conditioner(tf.zeros((1, self._size), dtype=dtype))
            if tuple(probe.shape[1:]) != (self._size, self._n_params):
                raise ValueError(f"{name}: the conditioner maps [None, {self._size}] to {[None, *probe.shape[1:]]}; "
                                 f"expected [None, {self._size}, {self._n_params}].")
            self._conditioner_variables = keras_variables(conditioner)
            super().__init__(forward_min_event_ndims=len(self._event_shape_in), validate_args=validate_args,
                             dtype=dtype, parameters=parameters, name=scope_name)

    @property
    def conditioner(self):
        return self._conditioner

    @property
    def order(self):
        return self._order

    @property
    def inverse_autoregressive(self):
        return self._iaf

    def _params(self, v_flat):
        return tf.cast(apply_on_events(self._conditioner, v_flat, 1), self.dtype)

    def shift_and_log_scale(self, v_flat):
        """`(shift, log_scale)`, each `[..., D]`, of the affine transform given the conditioning
        values `[..., D]` (the data for MAF, the latent for IAF); the function TFP's
        `MaskedAutoregressiveFlow(shift_and_log_scale_fn=...)` takes."""
        p = self._params(v_flat)
        return p[..., 0], bounded_log_scale(p[..., 1], self._scale_bound)

    def _tau(self, v, p, inverse):
        """`tau(v; p)` (or its inverse) elementwise and `log|d out / d v|`."""
        if self._transform_kind == "affine":
            shift, raw = p[..., 0], p[..., 1]
            log_s = bounded_log_scale(raw, self._scale_bound)
            if inverse:
                return (v - shift) * tf.exp(-log_s), -log_s
            return v * tf.exp(log_s) + shift, log_s
        widths, heights, slopes = spline_params(p, self._bins, self._bound, *self._mins)
        return rational_quadratic_spline(v, widths, heights, slopes, self._bound, inverse=inverse)

    def _flat(self, v):
        return tf.reshape(v, tf.concat([tf.shape(v)[:-len(self._event_shape_in)], [self._size]], 0))

    def _unflat(self, v, like):
        return tf.reshape(v, tf.shape(like))

    def _one_pass(self, v):
        """`out = tau^{-1}(v; theta(v))`: the parallel direction (MAF inverse, IAF forward)."""
        flat = self._flat(v)
        out, log_d = self._tau(flat, self._params(flat), inverse=True)
        return self._unflat(out, v), tf.reduce_sum(log_d, axis=-1)

    def _sequential(self, v):
        """`out_i = tau(v_i; theta_i(out_{<i}))`: D network calls (MAF forward, IAF inverse)."""
        flat = self._flat(v)

        def step(i, out, log_d):
            out, log_d = self._tau(flat, self._params(out), inverse=False)
            return i + 1, out, log_d

        # After step k the first k dimensions in the order are final; at step D the parameters
        # see only final values, so that step's log-derivatives are exact too. A while loop, not
        # a Python one: unrolled, D = 784 steps made a graph that exhausted 24 GB while tracing.
        _, out, log_d = tf.while_loop(lambda i, out, log_d: i < self._size, step,
                                      (tf.constant(0), tf.zeros_like(flat), tf.zeros_like(flat)),
                                      maximum_iterations=self._size)
        return self._unflat(out, v), tf.reduce_sum(log_d, axis=-1)

    def _augmented_forward(self, z):
        check_event_shape(z, self._event_shape_in, self.name)
        x, fldj = self._one_pass(z) if self._iaf else self._sequential(z)
        return x, {"fldj": fldj, "ildj": -fldj}

    def _augmented_inverse(self, x):
        check_event_shape(x, self._event_shape_in, self.name)
        z, ildj = self._sequential(x) if self._iaf else self._one_pass(x)
        return z, {"ildj": ildj, "fldj": -ildj}

    def _forward_event_shape(self, input_shape):
        return input_shape

    def _inverse_event_shape(self, output_shape):
        return output_shape

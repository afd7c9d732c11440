"""Rational-quadratic spline coupling (neural spline flows).

Direction: `forward` maps latent `z` to data `x` (sampling) and applies the spline `g`;
`inverse` maps data to latent and solves `g(z) = x` in closed form (a quadratic per element).
Outside `[-B, B]` the spline is the identity (linear tails), so an input out of bounds passes
through unchanged with a zero log-det, and never meets a square root of a negative number or
a division by zero: its value is computed on the input clamped into the interval, then
discarded by a `tf.where` whose both branches are finite (so the gradient is finite too).
"""
import math

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow.bijectors.coupling import _Coupling

tfb = tfp.bijectors

#: Durkan et al.'s defaults: the smallest bin width and height (as a fraction of 2B) and slope.
DEFAULT_MIN_BIN_WIDTH = 1e-3
DEFAULT_MIN_BIN_HEIGHT = 1e-3
DEFAULT_MIN_DERIVATIVE = 1e-3


def check_spline_args(bins, bound, min_bin_width=DEFAULT_MIN_BIN_WIDTH, min_bin_height=DEFAULT_MIN_BIN_HEIGHT,
                      min_derivative=DEFAULT_MIN_DERIVATIVE):
    """Raise a `ValueError` for a spline that cannot be built; returns `(bins, bound)` as Python numbers."""
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an int >= 2; received {bins!r}.")
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not (0 < bound < math.inf):
        raise ValueError(f"bound must be a positive finite number; received {bound!r}.")
    for name, value in (("min_bin_width", min_bin_width), ("min_bin_height", min_bin_height)):
        if not (isinstance(value, (int, float)) and 0 <= value * bins < 1):
            raise ValueError(f"{name} * bins must lie in [0, 1); received {name}={value!r} with {bins} bins.")
    if not (isinstance(min_derivative, (int, float)) and 0 <= min_derivative < 1):
        raise ValueError(f"min_derivative must lie in [0, 1); received {min_derivative!r}.")
    return int(bins), float(bound)


def num_spline_params(bins):
    """Raw outputs per transformed element: `bins` widths, `bins` heights, `bins - 1` slopes."""
    return 3 * bins - 1


def spline_params(raw, bins, bound, min_bin_width=DEFAULT_MIN_BIN_WIDTH, min_bin_height=DEFAULT_MIN_BIN_HEIGHT,
                  min_derivative=DEFAULT_MIN_DERIVATIVE):
    """Bin widths, heights and interior knot slopes from unconstrained network outputs.

    `w = 2B (m_w + (1 - K m_w) softmax(raw_w))`, the same for heights, and
    `d = m_d + softplus(raw_d + c)` with `c` such that `raw_d = 0` gives `d = 1`. All-zero raw
    outputs (a zero-initialised last layer) give equal bins and unit slopes: the identity.

    Args:
      raw: `[..., 3K - 1]` unconstrained values.
      bins: K, Python int.
      bound: B, Python float; the spline acts on `[-B, B]`.

    Returns:
      `(widths [..., K], heights [..., K], slopes [..., K - 1])`, as `tfb.RationalQuadraticSpline`
      takes them (`range_min = -B`).
    """
    raw_w, raw_h, raw_d = tf.split(raw, [bins, bins, bins - 1], axis=-1)
    widths = 2.0 * bound * (min_bin_width + (1.0 - bins * min_bin_width) * tf.math.softmax(raw_w, axis=-1))
    heights = 2.0 * bound * (min_bin_height + (1.0 - bins * min_bin_height) * tf.math.softmax(raw_h, axis=-1))
    shift = math.log(math.expm1(1.0 - min_derivative))
    slopes = min_derivative + tf.math.softplus(raw_d + shift)
    return widths, heights, slopes


def _knots(sizes, bound):
    # [-B, -B + w_0, ..., B]; the last knot is B exactly, whatever the rounding of the cumsum
    inner = -bound + tf.math.cumsum(sizes[..., :-1], axis=-1)
    lo = tf.fill(tf.shape(sizes[..., :1]), tf.constant(-bound, sizes.dtype))
    hi = tf.fill(tf.shape(sizes[..., :1]), tf.constant(bound, sizes.dtype))
    return tf.concat([lo, inner, hi], axis=-1)


def rational_quadratic_spline(v, widths, heights, slopes, bound, inverse=False):
    """The monotone rational-quadratic spline `y = g(x)` on `[-B, B]`, the identity outside.

    In bin k (`x_k <= x < x_{k+1}`, `xi = (x - x_k) / w_k`, `s_k = h_k / w_k`):
    `g(x) = y_k + h_k (s_k xi^2 + d_k xi (1 - xi)) / (s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi))`,
    `g'(x) = s_k^2 (d_{k+1} xi^2 + 2 s_k xi (1 - xi) + d_k (1 - xi)^2) / (denominator)^2`,
    with unit slopes at `-B` and `B`. The inverse solves the quadratic in `xi` with the
    numerically stable root `xi = 2c / (-b - sqrt(b^2 - 4ac))`. Bins are found by counting
    knots (`reduce_sum` of comparisons, one-hot gathers): no `searchsorted`, XLA compiles it.

    Args:
      v: `[..., n]` inputs (`x` for `g`, `y` for `g^-1`).
      widths, heights: `[..., n, K]` positive, each summing to `2B`.
      slopes: `[..., n, K - 1]` positive slopes at the interior knots.
      bound: B, Python float.
      inverse: apply `g^-1` instead of `g`.

    Returns:
      `(out, log_abs_deriv)`, both `[..., n]`: `g(v)` (or `g^-1(v)`) and `log|d out / d v|`
      elementwise (0 outside `[-B, B]`).

    References:
      Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", NeurIPS 2019, eqs. 4-8.
    """
    dtype = v.dtype
    bins = widths.shape[-1]
    inside = (v >= -bound) & (v <= bound)
    vc = tf.clip_by_value(v, -bound, bound)
    knots_x, knots_y = _knots(widths, bound), _knots(heights, bound)
    one = tf.ones_like(slopes[..., :1])
    d = tf.concat([one, slopes, one], axis=-1)  # K + 1 knot slopes
    knots = knots_y if inverse else knots_x
    idx = tf.reduce_sum(tf.cast(vc[..., None] >= knots[..., 1:bins], tf.int32), axis=-1)
    onehot = tf.one_hot(idx, bins, dtype=dtype)

    def pick(t):
        return tf.reduce_sum(t * onehot, axis=-1)

    x_k, y_k = pick(knots_x[..., :bins]), pick(knots_y[..., :bins])
    w_k, h_k = pick(widths), pick(heights)
    d_k, d_k1 = pick(d[..., :bins]), pick(d[..., 1:])
    s = h_k / w_k
    curv = d_k1 + d_k - 2.0 * s
    if inverse:
        dy = vc - y_k
        a = h_k * (s - d_k) + dy * curv
        b = h_k * d_k - dy * curv
        c = -s * dy
        disc = tf.maximum(b * b - 4.0 * a * c, 0.0)
        xi = tf.clip_by_value(2.0 * c / (-b - tf.sqrt(disc)), 0.0, 1.0)
        out = x_k + xi * w_k
    else:
        xi = tf.clip_by_value((vc - x_k) / w_k, 0.0, 1.0)
        out = y_k + h_k * (s * xi * xi + d_k * xi * (1.0 - xi)) / (s + curv * xi * (1.0 - xi))
    t = xi * (1.0 - xi)
    log_g = (2.0 * tf.math.log(s) + tf.math.log(d_k1 * xi * xi + 2.0 * s * t + d_k * (1.0 - xi) ** 2)
             - 2.0 * tf.math.log(s + curv * t))
    log_deriv = -log_g if inverse else log_g
    return tf.where(inside, out, v), tf.where(inside, log_deriv, tf.zeros_like(log_deriv))


class SplineCoupling(_Coupling):
    """Rational-quadratic spline coupling: `x_a = z_a`, `x_b = g_{theta(z_a)}(z_b)` elementwise;
    `log|det J| = sum log g'(z_b)`.

    `g` is a monotone rational-quadratic spline with K bins on `[-B, B]` and the identity
    outside (linear tails with unit slope, so the Jacobian is continuous at `+-B`). One
    conditioner call gives `3K - 1` values per transformed element: K bin widths, K bin heights
    and `K - 1` interior knot slopes (see `spline_params`). The default conditioner ends in a
    zero-initialised layer, so a new coupling is the identity.

    Args:
      event_shape: `[H, W, C]` for images or `[D]` for vectors (Python ints).
      mask: `checkerboard` or `channel` for images; `half` or `alternate` for vectors.
      parity: 0 or 1, swaps which part conditions.
      bins: K >= 2, number of spline bins.
      bound: B > 0; the spline acts on `[-B, B]`.
      conditioner: a Keras layer or callable mapping `[N, *cond_shape]` to
        `[N, *transformed_shape[:-1], transformed_shape[-1] * (3K - 1)]` (per transformed
        channel, its `3K - 1` values are contiguous). Defaults to a zero-initialised
        `networks.conv_net` (images) or `networks.mlp_net` (vectors).
      hidden: hidden width (int) for the default conv net, or a tuple of units for the MLP.
      min_bin_width, min_bin_height: smallest bin size as a fraction of `2B`.
      min_derivative: smallest interior knot slope.
      validate_args: TFP flag.
      dtype: float dtype of the flow.
      name: name scope.

    Raises:
      ValueError: `bins < 2`, `bound <= 0`, a mask that does not fit the event.

    References:
      Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", NeurIPS 2019.
    """

    def __init__(self, event_shape, mask="checkerboard", parity=0, bins=8, bound=3.0, conditioner=None,
                 hidden=None, min_bin_width=DEFAULT_MIN_BIN_WIDTH, min_bin_height=DEFAULT_MIN_BIN_HEIGHT,
                 min_derivative=DEFAULT_MIN_DERIVATIVE, validate_args=False, dtype=tf.float32,
                 name="spline_coupling"):
        parameters = dict(locals())
        self._bins, self._bound = check_spline_args(bins, bound, min_bin_width, min_bin_height, min_derivative)
        self._mins = (float(min_bin_width), float(min_bin_height), float(min_derivative))
        self._n_params = num_spline_params(self._bins)
        super().__init__(event_shape, mask, parity, conditioner, hidden, validate_args, dtype, name,
                         parameters)

    @property
    def bins(self):
        return self._bins

    @property
    def bound(self):
        return self._bound

    def spline_params(self, cond):
        """`(widths, heights, slopes)` `[..., *transformed_shape, K or K - 1]` given the conditioning part."""
        return self._params_from_raw(self._raw(cond))

    def _params_from_raw(self, h):
        # [..., C_b * P] -> [..., C_b, P]: each transformed channel's P values are contiguous
        raw = tf.reshape(h, tf.concat([tf.shape(h)[:-1], [h.shape[-1] // self._n_params, self._n_params]], 0))
        return spline_params(raw, self._bins, self._bound, *self._mins)

    def _transform(self, v, h, inverse):
        widths, heights, slopes = self._params_from_raw(h)
        out, log_deriv = rational_quadratic_spline(v, widths, heights, slopes, self._bound, inverse=inverse)
        # `log_deriv` is d out / d v; the coupling reports the forward (z -> x) log-det
        ldj = self._mask.select_transformed(-log_deriv if inverse else log_deriv)
        return out, self._reduce(ldj)

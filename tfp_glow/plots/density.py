"""The RealNVP paper's 2-D figures: data, model density, samples and latent codes of a toy flow."""
import weakref

import numpy as np

from tfp_glow.plots.canvas import as_numpy, new_figure, save_figure


def _bounds(data, margin=0.1, bounds=None):
    """A square window around the data's 0.5..99.5 percentiles, widened by `margin`."""
    if bounds is not None:
        (x0, x1), (y0, y1) = bounds
        return (float(x0), float(x1)), (float(y0), float(y1))
    lo = np.percentile(data, 0.5, axis=0)
    hi = np.percentile(data, 99.5, axis=0)
    center = (lo + hi) / 2.0
    half = max(float(np.max(hi - lo)), 1e-3) * (0.5 + margin)
    return ((float(center[0] - half), float(center[0] + half)),
            (float(center[1] - half), float(center[1] + half)))


def _batched(fn, x, batch_size):
    outs = [as_numpy(fn(x[i:i + batch_size])) for i in range(0, len(x), batch_size)]
    return np.concatenate(outs, axis=0)


_LOG_PROB_FNS = weakref.WeakKeyDictionary()


def _log_prob_fn(model):
    """`model.distribution.log_prob` as a `tf.function`, traced once per model."""
    import tensorflow as tf

    fn = _LOG_PROB_FNS.get(model)
    if fn is None:
        fn = tf.function(model.distribution.log_prob, reduce_retracing=True)
        _LOG_PROB_FNS[model] = fn
    return fn


def density_grid(model, bounds, grid_size=200, batch_size=8192):
    """`log p` of a 2-D model on a `grid_size x grid_size` grid: `(xs, ys, log_p[ys, xs])`."""
    import tensorflow as tf

    (x0, x1), (y0, y1) = bounds
    xs = np.linspace(x0, x1, grid_size, dtype=np.float32)
    ys = np.linspace(y0, y1, grid_size, dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)
    points = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    log_p = _batched(lambda b: _log_prob_fn(model)(tf.constant(b)), points, batch_size)
    return xs, ys, log_p.reshape(grid_size, grid_size)


def _check_2d(model, data):
    shape = tuple(getattr(model, "event_shape", ()))
    if shape != (2,):
        raise ValueError(f"2-D plots need a model of 2-D vectors (event shape [2]); this model has "
                         f"event shape {list(shape)}.")
    data = np.asarray(as_numpy(data), np.float32)
    if data.ndim != 2 or data.shape[1] != 2 or len(data) == 0:
        raise ValueError(f"data must be a non-empty array [N, 2]; received shape {data.shape}.")
    return data


def plot_density_2d(model, data, path, n_samples=2000, temperature=1.0, seed=0, grid_size=200,
                    bounds=None, title=None, max_points=2000):
    """The RealNVP paper's toy-data figure for a 2-D `FlowModel`, written as a PNG.

    Four panels: (1) data samples, (2) the model density `exp(log p(x))` on a grid, evaluated with
    `model.distribution.log_prob` on float32 points in batches, (3) samples of the model
    (latent `~ N(0, temperature^2 I)`), (4) the data mapped to the latent space with
    `model.encode` (data -> latent, `bijector.inverse`), with the unit circle and 2-sigma circle
    of the standard normal for reference. The title gives the test nll of `data` (mean
    `-log p`, nats per example).

    Args:
      model: a `FlowModel` over 2-D vectors (`n_bits=None`).
      data: float array `[N, 2]`, typically the test split.
      path: output `.png`.
      n_samples: model samples in panel 3.
      temperature: sampling temperature of panel 3.
      seed: sampling seed.
      grid_size: density grid resolution per axis.
      bounds: `((x0, x1), (y0, y1))`; default: a square around the data's 0.5..99.5
        percentiles plus 10%.
      title: figure title prefix (default: the flow's name).
      max_points: at most this many data points are scattered (all are used for the nll).

    Returns:
      `(path, test_nll)`.
    """
    data = _check_2d(model, data)
    log_p_data = _batched(lambda b: _log_prob_fn(model)(b), data, 8192)
    test_nll = float(-np.mean(log_p_data))
    bounds = _bounds(data, bounds=bounds)
    xs, ys, log_p = density_grid(model, bounds, grid_size)
    samples = as_numpy(model.sample(n_samples, temperature=temperature, seed=seed))
    shown = data[:max_points]
    latent = as_numpy(model.encode(shown))
    extent = [bounds[0][0], bounds[0][1], bounds[1][0], bounds[1][1]]

    fig = new_figure(4)
    axes = fig.subplots(1, 4)
    axes[0].scatter(shown[:, 0], shown[:, 1], s=2, alpha=0.5, color="tab:blue")
    axes[0].set_title(f"data ({len(data)} points)")
    axes[1].imshow(np.exp(log_p), origin="lower", extent=extent, aspect="auto", cmap="magma")
    axes[1].set_title("model density exp(log p)")
    axes[2].scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.5, color="tab:orange")
    axes[2].set_title(f"model samples (T={temperature:g})")
    for ax in axes[:3]:
        ax.set_xlim(*bounds[0])
        ax.set_ylim(*bounds[1])
    axes[3].scatter(latent[:, 0], latent[:, 1], s=2, alpha=0.5, color="tab:green")
    t = np.linspace(0, 2 * np.pi, 200)
    for r in (1.0, 2.0):
        axes[3].plot(r * np.cos(t), r * np.sin(t), color="k", lw=0.8, ls="--")
    axes[3].set_xlim(-4, 4)
    axes[3].set_ylim(-4, 4)
    axes[3].set_title("data mapped to latent z")
    for ax in axes:
        ax.set_aspect("equal", adjustable="box")
        ax.tick_params(labelsize=7)
    name = title or getattr(getattr(model, "config_", None), "flow", "flow")
    fig.suptitle(f"{name}: test nll {test_nll:.4f} nats")
    fig.tight_layout()
    save_figure(fig, path)
    return path, test_nll


def plot_samples_2d(samples, path, bounds=None, title="samples"):
    """A scatter plot of 2-D samples `[N, 2]`, written as a PNG; returns `path`."""
    samples = np.asarray(as_numpy(samples), np.float32)
    if samples.ndim != 2 or samples.shape[1] != 2:
        raise ValueError(f"samples must have shape [N, 2]; received {samples.shape}.")
    fig = new_figure(1, size=5)
    ax = fig.subplots()
    ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.5)
    if bounds is not None:
        ax.set_xlim(*bounds[0])
        ax.set_ylim(*bounds[1])
    ax.set_aspect("equal", adjustable="box")
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)

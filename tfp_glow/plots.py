"""Pictures of flows: sample grids, the RealNVP paper's 2-D density figure, training curves.

Everything renders off screen: figures are `matplotlib.figure.Figure` objects drawn by the Agg
canvas directly (pyplot is never imported, so the process-wide matplotlib backend is left
alone); matplotlib is the `plots` extra (`pip install "tfp_glow[plots]"`), a `MissingExtraError`
without it. Image grids need no extra: `tf.io.encode_png` writes them, with a PNG `Title`
(e.g. the sampling temperature) when given one.

Functions:
  image_grid: uint8 images `[N, H, W, C]` -> one uint8 grid image.
  save_image_grid: the same, upscaled (nearest neighbour) and written as a PNG.
  encode_png: PNG bytes of one uint8 image, with optional text chunks (Title, ...).
  plot_density_2d: data, model density, model samples and the data in latent space.
  plot_samples_2d: a scatter plot of samples of a 2-D model.
  plot_curves: bits/dim (or another metric) per epoch from a `metrics.csv`.
"""
import csv
import math
import os
import weakref

import struct
import zlib

import numpy as np

from tfp_glow import data
from tfp_glow.extras import require

__all__ = ["image_grid", "upscale", "encode_png", "save_image_grid", "sample_title", "save_sample_grids", "plot_density_2d", "plot_samples_2d",
           "plot_curves", "read_metrics_csv"]


def _as_numpy(x):
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def _as_images(images):
    x = _as_numpy(images)
    if x.ndim == 3:  # [N, H, W] -> [N, H, W, 1]
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"images must have shape [N, H, W, C] or [N, H, W]; received shape {x.shape}.")
    if x.shape[0] == 0:
        raise ValueError("images is empty: nothing to put in a grid.")
    if x.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (0..255), e.g. from FlowModel.sample_images; "
                         f"received dtype {x.dtype}.")
    return x


def image_grid(images, cols=None, pad=0, pad_value=0):
    """Tiles uint8 images into one image, row by row.

    With `N` images, `cols` defaults to `ceil(sqrt(N))` and `rows = ceil(N / cols)`; cells
    without an image stay `pad_value`. Image `i` goes to row `i // cols`, column `i % cols`.

    Args:
      images: uint8 array or tensor `[N, H, W, C]` (or `[N, H, W]`).
      cols: number of columns.
      pad: pixels of `pad_value` between neighbouring cells (none around the border).
      pad_value: uint8 fill value of padding and empty cells.

    Returns:
      uint8 array `[rows * H + (rows - 1) * pad, cols * W + (cols - 1) * pad, C]`.
    """
    x = _as_images(images)
    n, h, w, c = x.shape
    cols = int(cols) if cols else int(math.ceil(math.sqrt(n)))
    if cols < 1:
        raise ValueError(f"cols must be a positive int; received {cols!r}.")
    rows = int(math.ceil(n / cols))
    out = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, c), pad_value, np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        out[r * (h + pad):r * (h + pad) + h, k * (w + pad):k * (w + pad) + w] = x[i]
    return out


def upscale(images, scale):
    """Nearest-neighbour upscaling of `[N, H, W, C]` images by an integer factor."""
    x = _as_images(images)
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"scale must be a positive int; received {scale!r}.")
    if scale == 1:
        return x
    return np.repeat(np.repeat(x, scale, axis=1), scale, axis=2)


def encode_png(image, text=None):
    """PNG bytes of a uint8 image `[H, W, C]` (C = 1, 2, 3 or 4), by `tf.io.encode_png`.

    `text` (keyword -> value) goes into `tEXt` chunks right after the header, where image viewers
    and PIL (`Image.open(path).text`) find them; `"Title"` is the PNG standard's keyword for a
    caption.

    Args:
      image: uint8 array `[H, W, C]`.
      text: optional dict of Latin-1 strings; keywords have 1 to 79 characters.

    References:
      PNG Specification (Third Edition), W3C, section 11.3.3.2 (tEXt) and 11.3.3.1 (keywords).
    """
    import tensorflow as tf

    png = tf.io.encode_png(np.asarray(image, np.uint8)).numpy()
    chunks = b""
    for keyword, value in (text or {}).items():
        if not 1 <= len(keyword) <= 79:
            raise ValueError(f"PNG text keywords have 1 to 79 characters; received {keyword!r}.")
        body = b"tEXt" + keyword.encode("latin-1") + b"\0" + str(value).encode("latin-1", "replace")
        chunks += struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    header_end = 8 + 25  # the 8-byte signature, then IHDR: length, type, 13 bytes of data, CRC
    return png[:header_end] + chunks + png[header_end:]


def save_image_grid(path, images, scale=None, cols=None, pad=2, pad_value=128, min_size=48, title=None):
    """Writes uint8 images as one PNG grid, each image upscaled so small images stay visible.

    Args:
      path: output file (`.png`); parent directories are created.
      images: uint8 `[N, H, W, C]` or `[N, H, W]`. C = 1, 3, 4 are written as L, RGB,
        RGBA; any other C as C grayscale panels side by side (`[H, C * W]` per image).
      scale: integer nearest-neighbour upscale factor; by default the smallest factor that makes
        each image at least `min_size` pixels on its longer side (8x8 digits -> 6x, 48 px).
      cols: grid columns (default `ceil(sqrt(N))`).
      pad: grid lines between the (upscaled) images, in output pixels.
      pad_value: grey level of the grid lines and of empty cells.
      min_size: see `scale`.
      title: optional caption, stored as the PNG's `Title` text (e.g. the sampling temperature).

    Returns:
      `path`.
    """
    x = _as_images(images)
    if scale is None:
        scale = max(1, int(math.ceil(min_size / max(x.shape[1], x.shape[2]))))
    if x.shape[-1] not in (1, 3, 4):
        # PNG has no 2- or 5+-channel mode: each channel becomes a grayscale panel, side by side
        x = np.concatenate([x[..., c:c + 1] for c in range(x.shape[-1])], axis=2)
    grid = image_grid(upscale(x, scale), cols=cols, pad=pad, pad_value=pad_value)
    _makedirs_for(path)
    with open(path, "wb") as f:
        f.write(encode_png(grid, None if title is None else {"Title": title}))
    return path


def sample_title(temperature, what="samples", epoch=None):
    """The caption of a sample grid: `"samples at temperature T=0.7 (epoch 3)"`."""
    at = f" (epoch {epoch})" if epoch is not None else ""
    return f"{what} at temperature T={float(temperature):g}{at}"


def _makedirs_for(path):
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)


def _figure(ncols, nrows=1, size=3.6):
    Figure = require("matplotlib.figure", "plots", "drawing figures (tfp_glow.plots)").Figure

    return Figure(figsize=(size * ncols, size * nrows + 0.5), dpi=100)


def _save_figure(fig, path):
    FigureCanvasAgg = require("matplotlib.backends.backend_agg", "plots", "drawing figures").FigureCanvasAgg

    _makedirs_for(path)
    FigureCanvasAgg(fig)
    fig.savefig(path)
    return path


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
    outs = [_as_numpy(fn(x[i:i + batch_size])) for i in range(0, len(x), batch_size)]
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
    data = np.asarray(_as_numpy(data), np.float32)
    if data.ndim != 2 or data.shape[1] != 2 or len(data) == 0:
        raise ValueError(f"data must be a non-empty array [N, 2]; received shape {data.shape}.")
    return data


def save_sample_grids(model, directory, temperatures=(0.7, 1.0), n=64, seed=0):
    """Samples an image `FlowModel` at each temperature and writes `samples_t{T}.png` grids.

    Args:
      model: a trained image `FlowModel`.
      directory: output folder.
      temperatures: base standard deviations to sample at.
      n: samples per grid.
      seed: sampling seed.

    Returns:
      The written paths, one per temperature.

    Raises:
      FloatingPointError: a sample is NaN or infinite (nothing is hidden by the uint8 cast).
    """
    paths = []
    for temperature in temperatures:
        x = model.sample(n, temperature, seed=seed)
        if not np.all(np.isfinite(x.numpy())):
            raise FloatingPointError(f"non-finite samples at temperature {temperature}")
        paths.append(save_image_grid(os.path.join(directory, f"samples_t{temperature:g}.png"),
                                     data.to_uint8(x, model.n_bits), title=sample_title(temperature)))
    return paths


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
    samples = _as_numpy(model.sample(n_samples, temperature=temperature, seed=seed))
    shown = data[:max_points]
    latent = _as_numpy(model.encode(shown))
    extent = [bounds[0][0], bounds[0][1], bounds[1][0], bounds[1][1]]

    fig = _figure(4)
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
    _save_figure(fig, path)
    return path, test_nll


def plot_samples_2d(samples, path, bounds=None, title="samples"):
    """A scatter plot of 2-D samples `[N, 2]`, written as a PNG; returns `path`."""
    samples = np.asarray(_as_numpy(samples), np.float32)
    if samples.ndim != 2 or samples.shape[1] != 2:
        raise ValueError(f"samples must have shape [N, 2]; received {samples.shape}.")
    fig = _figure(1, size=5)
    ax = fig.subplots()
    ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.5)
    if bounds is not None:
        ax.set_xlim(*bounds[0])
        ax.set_ylim(*bounds[1])
    ax.set_aspect("equal", adjustable="box")
    ax.set_title(title)
    fig.tight_layout()
    return _save_figure(fig, path)


def read_metrics_csv(csv_path):
    """Rows of a Keras `CSVLogger` file as `{column: [float per epoch]}`, epochs 1-based.

    The `epoch` column of Keras is 0-based; it is returned 1-based. When an epoch appears more
    than once (a run resumed from an earlier checkpoint), its last row wins.
    """
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    by_epoch = {}
    for row in rows:
        try:
            epoch = int(float(row["epoch"])) + 1
        except (KeyError, TypeError, ValueError):
            continue
        by_epoch[epoch] = row
    epochs = sorted(by_epoch)
    columns = {"epoch": [float(e) for e in epochs]}
    keys = [k for k in (rows[0].keys() if rows else []) if k != "epoch"]
    for key in keys:
        vals = []
        for e in epochs:
            try:
                vals.append(float(by_epoch[e].get(key)))
            except (TypeError, ValueError):
                vals.append(float("nan"))
        columns[key] = vals
    return columns


def plot_curves(csv_path, png_path, metric="bits_per_dim", ylabel=None):
    """Training and validation `metric` per epoch from a `metrics.csv`, written as a PNG.

    Args:
      csv_path: a Keras `CSVLogger` file with columns `epoch`, `metric` and `val_<metric>`.
      png_path: output `.png`.
      metric: the column to plot (`bits_per_dim`, `nll` or `loss`).
      ylabel: y axis label (default: "bits/dim" for `bits_per_dim`, else the metric name).

    Returns:
      `png_path`.
    """
    cols = read_metrics_csv(csv_path)
    if not cols["epoch"] or metric not in cols:
        raise ValueError(f"{csv_path!r} has no {metric!r} values per epoch to plot.")
    fig = _figure(1, size=5)
    ax = fig.subplots()
    ax.plot(cols["epoch"], cols[metric], marker="o", ms=3, label="training")
    if f"val_{metric}" in cols:
        ax.plot(cols["epoch"], cols[f"val_{metric}"], marker="o", ms=3, label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or ("bits/dim" if metric == "bits_per_dim" else metric))
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(f"{ax.get_ylabel()} per epoch")
    fig.tight_layout()
    return _save_figure(fig, png_path)

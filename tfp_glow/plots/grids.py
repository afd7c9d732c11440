"""Image grids: samples side by side, upscaled and written as PNGs with a caption.

Image grids need no extra: `tf.io.encode_png` writes them, with a PNG `Title` (e.g. the
sampling temperature) when given one, and the caption (title, row and column labels) is drawn
into the picture in a built-in bitmap font (`captions`, `font`).
"""
import math
import os
import struct
import zlib

import numpy as np

from tfp_glow.data import quantization
from tfp_glow.plots.canvas import as_numpy, makedirs_for
from tfp_glow.plots.captions import add_captions


def _as_images(images):
    x = as_numpy(images)
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


def save_image_grid(path, images, scale=None, cols=None, pad=2, pad_value=128, min_size=48, title=None,
                    row_labels=None, col_labels=None, caption=True):
    """Writes uint8 images as one PNG grid, each image upscaled so small images stay visible.

    The caption (`title`, `row_labels`, `col_labels`) is drawn on white strips above and left of
    the grid (`captions.add_captions`); the grid itself is unchanged, so its cells stay
    comparable pixel by pixel.

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
      title: optional caption (e.g. the sampling temperature and seed), drawn above the grid and
        stored as the PNG's `Title` text.
      row_labels: one label per grid row (e.g. the class of each row), drawn left of it.
      col_labels: one label per grid column (e.g. a strength), drawn above it.
      caption: draw the caption into the picture (False: the `Title` text only).

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
    if caption and (title or row_labels is not None or col_labels is not None):
        grid, _ = add_captions(grid, (x.shape[1] * scale, x.shape[2] * scale), pad, title=title,
                               row_labels=row_labels, col_labels=col_labels)
    makedirs_for(path)
    with open(path, "wb") as f:
        f.write(encode_png(grid, None if title is None else {"Title": title}))
    return path


def sample_title(temperature, what="samples", epoch=None, seed=None):
    """The caption of a sample grid: `"samples at temperature T=0.7, seed 0 (epoch 3)"`."""
    seeded = f", seed {seed}" if seed is not None else ""
    at = f" (epoch {epoch})" if epoch is not None else ""
    return f"{what} at temperature T={float(temperature):g}{seeded}{at}"


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
                                     quantization.to_uint8(x, model.n_bits),
                                     title=sample_title(temperature, seed=seed)))
    return paths

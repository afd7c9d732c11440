"""Captions drawn into an image grid: a title strip above it, a label over each column and a
label left of each row, in the built-in bitmap font (`font`), so a grid explains itself in any
viewer. The grid's own pixels are not touched: it is pasted whole at `offset`.
"""
import numpy as np

from tfp_glow.plots import font

__all__ = ["add_captions", "caption_scale"]


def caption_scale(cell_h, cell_w):
    """The font magnification for cells of `cell_h x cell_w` pixels: 2 from 32 pixels on, else 1."""
    return 2 if min(cell_h, cell_w) >= 32 else 1


def _draw(canvas, mask, top, left, ink):
    """Paints the True pixels of `mask` with `ink`, clipped to the canvas."""
    h = min(mask.shape[0], canvas.shape[0] - top)
    w = min(mask.shape[1], canvas.shape[1] - left)
    if h > 0 and w > 0:
        region = canvas[top:top + h, left:left + w]
        region[mask[:h, :w]] = ink


def add_captions(grid, cell, pad=0, title=None, row_labels=None, col_labels=None, scale=None, ink=0, paper=255):
    """The grid with caption strips: `(image, (top, left))`, the grid at `image[top:, left:]`.

    Layout: the title on a strip of its own at the top, left-aligned; under it the column
    labels, each centred over its column; the row labels in a column at the left, each
    centred on its row. The canvas widens to the right where the title is wider than the grid.

    Args:
      grid: uint8 `[H, W, C]`, cells of `cell` pixels separated by `pad` pixels (`image_grid`).
      cell: `(cell_h, cell_w)` in pixels.
      pad: pixels between neighbouring cells.
      title: a string, or None.
      row_labels: one string per grid row (`ceil(N / cols)`), or None.
      col_labels: one string per grid column, or None.
      scale: font magnification (default `caption_scale(*cell)`; the title then drops to 1
        where it would be wider than the grid at that size).
      ink, paper: grey levels of the text and of the strips (alpha, if any, is opaque).

    Returns:
      `(uint8 [top + H, max(left + W, title width), C], (top, left))`.
    """
    grid = np.asarray(grid, np.uint8)
    ch, cw = (int(v) for v in cell)
    rows, cols = (grid.shape[0] + pad) // (ch + pad), (grid.shape[1] + pad) // (cw + pad)
    for name, labels, want in (("row_labels", row_labels, rows), ("col_labels", col_labels, cols)):
        if labels is not None and len(labels) != want:
            raise ValueError(f"{name} needs one label per grid {name[:3]} ({want}); received {len(labels)}.")
    s = int(scale or caption_scale(ch, cw))
    m, line = 2 * s, font.HEIGHT * s  # margin around text, text height
    ts = s  # the title's magnification: the small font where it would be wider than the grid
    if scale is None and title and s > 1 and font.text_width(str(title), s) + 2 * m > grid.shape[1]:
        ts = 1
    title_h = font.HEIGHT * ts + 4 * ts if title else 0
    cols_h = line + 2 * m if col_labels is not None else 0
    left = max(font.text_width(str(t), s) for t in row_labels) + 2 * m if row_labels is not None else 0
    top = title_h + cols_h
    width = max(left + grid.shape[1], font.text_width(str(title), ts) + 4 * ts if title else 0)
    canvas = np.full((top + grid.shape[0], width, grid.shape[2]), paper, np.uint8)
    if grid.shape[2] in (2, 4):  # an alpha channel: the strips are opaque
        canvas[..., -1] = 255
    ink = np.array([ink] * grid.shape[2], np.uint8)
    if grid.shape[2] in (2, 4):
        ink[-1] = 255
    canvas[top:, left:left + grid.shape[1]] = grid
    if title:
        _draw(canvas, font.render_text(str(title), ts), 2 * ts, 2 * ts, ink)
    for k, label in enumerate(col_labels if col_labels is not None else ()):
        mask = font.render_text(str(label), s)
        centre = left + k * (cw + pad) + cw // 2
        _draw(canvas, mask, title_h + m, max(0, centre - mask.shape[1] // 2), ink)
    for r, label in enumerate(row_labels if row_labels is not None else ()):
        mask = font.render_text(str(label), s)
        _draw(canvas, mask, top + r * (ch + pad) + (ch - line) // 2, m, ink)
    return canvas, (top, left)

"""Pictures that explain themselves: a caption drawn into every grid (temperature and seed, the
method of each interpolation row, the strength of each manipulation column, the class of each
row), the tiles left unchanged, and AUROC in the score histograms' legends."""
import os

import numpy as np
import pytest
from PIL import Image

from tfp_glow import plots
from tfp_glow.analysis import scoring
from tfp_glow.plots import font
from tfp_glow.plots.captions import add_captions
from cli_runner import run_cli

TINY = ["--levels", "2", "--steps", "1", "--hidden", "8", "--no-xla", "--steps-per-epoch", "2", "--n-samples", "10"]
PAPER, GREY = 255, 128


def _pixels(path):
    with Image.open(path) as img:
        img.load()
        return np.asarray(img.convert("L")), img.text


def _ink_bbox(region):
    """The smallest box around the dark (text) pixels of a caption strip, as a bool mask."""
    ink = region < 64
    if not ink.any():
        return ink[:0, :0]
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _text_mask(text, scale):
    """The expected ink of `text`, cropped like `_ink_bbox` (a leading/trailing blank is no ink)."""
    return _ink_bbox(np.where(font.render_text(text, scale), 0, 255))


def test_font_draws_known_glyphs():
    one = ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."]  # a classic 5x7 "1"
    np.testing.assert_array_equal(font.render_text("1"), np.array([[c == "#" for c in r] for r in one]))
    assert font.render_text("ab").shape == (7, 11) and font.render_text("ab", 2).shape == (14, 22)
    np.testing.assert_array_equal(font.render_text("seed"), font.render_text("SEED"))
    np.testing.assert_array_equal(font.render_text("\u00e9"), font.render_text("?"))  # no glyph: "?"
    glyphs = [font.render_text(c) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.=-:,()"]
    assert len({g.tobytes() for g in glyphs}) == len(glyphs)  # every glyph distinct


def test_the_title_is_drawn_above_unchanged_tiles(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 1), dtype=np.uint8)
    title = plots.sample_title(0.7, seed=3)
    path = plots.save_image_grid(str(tmp_path / "g.png"), x, cols=3, title=title)
    pixels, text = _pixels(path)
    assert text["Title"] == "samples at temperature T=0.7, seed 3"
    grid = plots.image_grid(plots.upscale(x, 6), cols=3, pad=2, pad_value=GREY)[..., 0]
    np.testing.assert_array_equal(pixels[-grid.shape[0]:, :grid.shape[1]], grid)  # tiles as before
    strip = pixels[:-grid.shape[0]]
    assert strip.shape[0] >= 7 and (strip < 64).any() and (strip == PAPER).any()
    np.testing.assert_array_equal(_ink_bbox(strip), _text_mask(title, 1))  # the title, in the built-in font
    # caption=False: the bare grid, the title only in the PNG text
    bare, text = _pixels(plots.save_image_grid(str(tmp_path / "b.png"), x, cols=3, title=title, caption=False))
    np.testing.assert_array_equal(bare, grid)
    assert text["Title"] == title


def test_row_and_column_labels_sit_on_their_rows_and_columns():
    cell, pad = (48, 40), 2
    grid = np.full((2 * 48 + 2, 3 * 40 + 4, 3), 90, np.uint8)
    image, (top, left) = add_captions(grid, cell, pad, title="t", row_labels=["class 0", "class 1"],
                                      col_labels=["-1", "0", "1.5"])
    np.testing.assert_array_equal(image[top:, left:left + grid.shape[1]], grid)
    gray = image[..., 0]
    for r, label in enumerate(["class 0", "class 1"]):
        band = gray[top + r * (cell[0] + pad):top + r * (cell[0] + pad) + cell[0], :left]
        np.testing.assert_array_equal(_ink_bbox(band), _text_mask(label, 2))
    for k, label in enumerate(["-1", "0", "1.5"]):
        x0 = left + k * (cell[1] + pad)
        column = gray[:top, x0:x0 + cell[1]]
        column = column[column.shape[0] - (top - 4 - 7 * 2 - 4 * 2):]  # below the title strip
        np.testing.assert_array_equal(_ink_bbox(column), _text_mask(label, 2))
    with pytest.raises(ValueError, match="one label per grid row"):
        add_captions(grid, cell, pad, row_labels=["only one"])


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("runs") / "conditional")
    rc, out, err = run_cli(["train", "--conditional", "--epochs", "1", *TINY, "--run-dir", run_dir, "--verbose", "0"])
    assert rc == 0, out + err
    return run_dir


def _row_labels(pixels, n_rows, cell_h, pad):
    """The ink of each row's label strip: left of the grid, which starts where the grey line
    between its first two rows starts."""
    top = pixels.shape[0] - (n_rows * cell_h + (n_rows - 1) * pad)
    left = int(np.flatnonzero(pixels[top + cell_h] == GREY)[0])
    return [_ink_bbox(pixels[top + r * (cell_h + pad):top + r * (cell_h + pad) + cell_h, :left])
            for r in range(n_rows)]


def test_cli_grids_carry_their_captions(cond_run, tmp_path):
    # sample --by-class: one row per class, labelled; the title gives temperature and seed
    out_png = str(tmp_path / "by_class.png")
    rc, out, err = run_cli(["sample", cond_run, "--by-class", "--n", "2", "--seed", "5", "--temperature", "0.6",
                            "--out", out_png])
    assert rc == 0, out + err
    pixels, _ = _pixels(out_png)
    labels = _row_labels(pixels, 10, 48, 2)
    for c in range(10):
        np.testing.assert_array_equal(labels[c], _text_mask(f"class {c}", 2))
    title = pixels[:pixels.shape[0] - (10 * 48 + 9 * 2)]
    # (a title wider than the grid is drawn in the small font)
    np.testing.assert_array_equal(_ink_bbox(title), _text_mask("samples at temperature T=0.6, seed 5", 1))
    # interpolate: rows labelled linear and spherical
    rc, out, err = run_cli(["interpolate", cond_run, "--a", "2", "--b", "9", "--steps", "5"])
    assert rc == 0, out + err
    pixels, _ = _pixels(os.path.join(cond_run, "interpolate_2_9.png"))
    linear, spherical = _row_labels(pixels, 2, 48, 2)
    np.testing.assert_array_equal(linear, _text_mask("linear", 2))
    np.testing.assert_array_equal(spherical, _text_mask("spherical", 2))
    # manipulate: a strength over each column (the strip just above the grid)
    rc, out, err = run_cli(["manipulate", cond_run, "--attribute", "1:7", "--n", "2", "--strengths=-1,0,1.5"])
    assert rc == 0, out + err
    pixels, _ = _pixels(os.path.join(cond_run, "manipulate_1to7.png"))
    top = pixels.shape[0] - (2 * 48 + 2)
    band = pixels[top - (7 * 2 + 2 * 4):top]
    for k, strength in enumerate(["-1", "0", "1.5"]):
        np.testing.assert_array_equal(_ink_bbox(band[:, k * 50:k * 50 + 48]), _text_mask(strength, 2))
    assert _ink_bbox(pixels[:top - (7 * 2 + 2 * 4)]).size  # and a title above them


def test_score_histograms_give_auroc_in_the_legend(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.axes import Axes

    shown = []
    real_legend = Axes.legend

    def legend(self, *a, **k):
        shown.append(self.get_legend_handles_labels()[1])
        return real_legend(self, *a, **k)

    monkeypatch.setattr(Axes, "legend", legend)
    rng = np.random.default_rng(0)
    tables = {name: {s: rng.normal(mu, 1.0, 50) for s in scoring.SCORES} for name, mu in (("digits", 0), ("ood", 2))}
    aurocs = {s: scoring.auroc(tables["digits"][s], tables["ood"][s]) for s in scoring.SCORES}
    scoring.plot_histograms(str(tmp_path / "h.png"), tables, aurocs=aurocs)
    assert shown == [["digits", f"ood (AUROC {aurocs[s]:.3f})"] for s in scoring.SCORES]
    assert os.path.isfile(tmp_path / "h.png")

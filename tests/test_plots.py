"""Tests of tfp_glow.plots: grid layout, PNG files, 2-D density figure, curves."""
import csv

import numpy as np
import pytest
from PIL import Image

from tfp_glow import plots


def _reference_grid(x, cols):
    n, h, w, c = x.shape
    rows = -(-n // cols)
    padded = np.zeros((rows * cols, h, w, c), np.uint8)
    padded[:n] = x
    return padded.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


@pytest.mark.parametrize("n,cols", [(64, None), (10, None), (7, 3), (1, None)])
def test_image_grid_matches_numpy_reference(n, cols):
    rng = np.random.default_rng(n)
    x = rng.integers(0, 256, size=(n, 5, 4, 3), dtype=np.uint8)
    grid = plots.image_grid(x, cols=cols)
    expected_cols = cols or int(np.ceil(np.sqrt(n)))
    np.testing.assert_array_equal(grid, _reference_grid(x, expected_cols))
    assert grid.dtype == np.uint8


def test_image_grid_places_image_i_at_row_major_cell():
    x = np.arange(6, dtype=np.uint8).reshape(6, 1, 1, 1) * 40
    grid = plots.image_grid(x, cols=3)
    np.testing.assert_array_equal(grid[..., 0], [[0, 40, 80], [120, 160, 200]])


def test_image_grid_padding_and_rank3_input():
    x = np.full((4, 2, 2), 255, np.uint8)
    grid = plots.image_grid(x, pad=1, pad_value=7)
    assert grid.shape == (5, 5, 1)
    assert (grid[2, :, 0] == 7).all() and (grid[:, 2, 0] == 7).all()
    assert (grid[:2, :2] == 255).all()


def test_image_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        plots.image_grid(np.zeros((2, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match="empty"):
        plots.image_grid(np.zeros((0, 4, 4, 1), np.uint8))


def test_save_image_grid_upscales_small_images(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, size=(64, 8, 8, 1), dtype=np.uint8)
    path = plots.save_image_grid(str(tmp_path / "sub" / "grid.png"), x, pad=0)
    img = np.asarray(Image.open(path))
    assert img.shape == (8 * 48, 8 * 48)  # 8x8 digits -> 6x -> 48 px each
    # nearest upscaling: every 6x6 block is one source pixel
    np.testing.assert_array_equal(img[::6, ::6], _reference_grid(x, 8)[..., 0])
    rgb = plots.save_image_grid(str(tmp_path / "rgb.png"), np.zeros((3, 32, 32, 3), np.uint8), scale=1)
    assert Image.open(rgb).mode == "RGB"


def _vector_model():
    from tfp_glow.models import FlowConfig
    from tfp_glow.training import FlowModel

    model = FlowModel(FlowConfig("realnvp", (2,), {"couplings_per_stage": 2, "hidden": [8, 8]}), n_bits=None)
    data = np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32)
    model.initialize(data)
    return model, data


def test_plot_density_2d_writes_png_with_finite_nll(tmp_path):
    model, data = _vector_model()
    path, nll = plots.plot_density_2d(model, data, str(tmp_path / "density.png"), n_samples=200, grid_size=40)
    assert np.isfinite(nll)
    # a freshly initialised flow is about a standard normal fitted to N(0, 1) data: nll ~ log(2 pi e)
    assert 2.0 < nll < 4.5
    img = Image.open(path)
    assert img.size[0] > 4 * img.size[1] / 2 and (tmp_path / "density.png").stat().st_size > 10_000


def test_plot_density_2d_rejects_image_model(tmp_path):
    from tfp_glow.models import FlowConfig
    from tfp_glow.training import FlowModel

    model = FlowModel(FlowConfig("glow", (4, 4, 1), {"levels": 1, "steps": 1, "hidden_channels": 4}), n_bits=5)
    with pytest.raises(ValueError, match="2-D"):
        plots.plot_density_2d(model, np.zeros((4, 2), np.float32), str(tmp_path / "x.png"))


def test_plot_samples_2d(tmp_path):
    path = plots.plot_samples_2d(np.random.default_rng(0).normal(size=(100, 2)), str(tmp_path / "s.png"))
    assert (tmp_path / "s.png").stat().st_size > 0 and path.endswith("s.png")


def test_plot_curves_from_csv_last_row_per_epoch_wins(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    rows = [(0, 4.0, 4.1), (1, 3.5, 3.7), (1, 3.4, 3.6), (2, 3.2, 3.5)]  # epoch 1 logged twice (resume)
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "bits_per_dim", "loss", "val_bits_per_dim"])
        for e, b, v in rows:
            w.writerow([e, b, b, v])
    cols = plots.read_metrics_csv(str(csv_path))
    assert cols["epoch"] == [1.0, 2.0, 3.0]
    assert cols["bits_per_dim"] == [4.0, 3.4, 3.2]
    assert cols["val_bits_per_dim"] == [4.1, 3.6, 3.5]
    png = plots.plot_curves(str(csv_path), str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").stat().st_size > 5_000 and png.endswith("curves.png")
    with pytest.raises(ValueError, match="no 'nll'"):
        plots.plot_curves(str(csv_path), str(tmp_path / "c2.png"), metric="nll")


def test_save_sample_grids_writes_one_png_per_temperature(tmp_path):
    from tfp_glow import data as data_lib
    from tfp_glow.models import FlowConfig
    from tfp_glow.training import FlowModel

    model = FlowModel(FlowConfig("glow", (8, 8, 1), dict(levels=1, steps=1, hidden_channels=8)), n_bits=5)
    model.initialize(data_lib.load_digits("train")[:64])
    paths = plots.save_sample_grids(model, str(tmp_path), (0.5, 1.0), n=4, seed=1)
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["samples_t0.5.png", "samples_t1.png"]
    for p in paths:
        assert Image.open(p).size[0] > 0

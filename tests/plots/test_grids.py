"""tfp_glow.plots.grids: grid layout against a numpy reference, PNG files and their titles."""
import numpy as np
import pytest
from PIL import Image

from tfp_glow import plots
import support


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


def test_save_sample_grids_writes_one_png_per_temperature(tmp_path):
    from tfp_glow import data as data_lib
    from tfp_glow.training import FlowModel

    model = FlowModel(support.ONE_LEVEL_GLOW, n_bits=5)
    model.initialize(data_lib.load_digits("train")[:64])
    paths = plots.save_sample_grids(model, str(tmp_path), (0.5, 1.0), n=4, seed=1)
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["samples_t0.5.png", "samples_t1.png"]
    for p in paths:
        assert Image.open(p).size[0] > 0

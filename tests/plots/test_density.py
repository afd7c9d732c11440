"""tfp_glow.plots.density: the 2-D density figure and sample scatter of a toy flow."""
import numpy as np
import pytest
from PIL import Image

from tfp_glow import plots


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

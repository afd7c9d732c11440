"""Pictures of flows: sample grids, the RealNVP paper's 2-D density figure, training curves.

Everything renders off screen (`canvas`); matplotlib is the `plots` extra
(`pip install "tfp_glow[plots]"`), a `MissingExtraError` without it. Image grids need no extra.

Modules:
  grids: `image_grid` (uint8 images `[N, H, W, C]` -> one grid image), `save_image_grid` (the same,
    upscaled, captioned and written as a PNG), `encode_png` (PNG bytes with text chunks), `sample_title`,
    `save_sample_grids`.
  density: `plot_density_2d` (data, model density, model samples and the data in latent space),
    `plot_samples_2d`, `density_grid`.
  curves: `plot_curves` (bits/dim or another metric per epoch from a `metrics.csv`),
    `read_metrics_csv`.
  captions: `add_captions`, the title and row / column labels drawn into a grid image.
  font: a built-in 5x7 bitmap font (`render_text`), so captions need no matplotlib.
  canvas: the off-screen figure and output folders the others share.
"""
from tfp_glow.plots.curves import plot_curves, read_metrics_csv
from tfp_glow.plots.density import density_grid, plot_density_2d, plot_samples_2d
from tfp_glow.plots.grids import encode_png, image_grid, sample_title, save_image_grid, save_sample_grids, upscale

__all__ = ["image_grid", "upscale", "encode_png", "save_image_grid", "sample_title", "save_sample_grids",
           "plot_density_2d", "plot_samples_2d", "density_grid", "plot_curves", "read_metrics_csv"]

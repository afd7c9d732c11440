"""Data sources, tf.data pipelines and dequantization helpers for tfp_glow (being split up)."""
from tfp_glow.data.sources import *  # noqa: F401,F403  (temporary: explicit re-exports follow)
from tfp_glow.data.sources import __all__  # noqa: F401

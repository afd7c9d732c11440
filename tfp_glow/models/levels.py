"""The levels of a multi-scale flow's latent, and base draws with one temperature per level.

`level_map(model)`: which level every latent entry belongs to (0 = factored out first, at the
finest scale; `levels - 1` = the top); `draw_latent(model, n, temperature)` scales each level's
base noise by its own temperature (`sampling.draw_latent`, the package's one sampler).

References:
  Kingma & Dhariwal, "Glow", NeurIPS 2018 (per-level temperature).
"""
import numpy as np
import tensorflow as tf

from tfp_glow.models import sampling

def num_levels(model):
    """Levels of a multi-scale image flow (glow, realnvp on images); 1 otherwise."""
    cfg = model.config_
    if cfg.flow in ("glow", "realnvp") and len(model.event_shape) == 3:
        return int(cfg.kwargs.get("levels", 3 if cfg.flow == "glow" else 2))
    return 1


def _level_ids(shape, levels, flow, level):
    h, w, c = shape
    if level + 1 == levels and flow == "realnvp":  # realnvp's last scale does not squeeze
        return np.full(shape, level, np.int32)
    sq = (h // 2, w // 2, 4 * c)
    if level + 1 == levels:
        squeezed = np.full(sq, level, np.int32)
    else:  # Split: the first half of the channels goes deeper, the second half is this level's
        inner = _level_ids((sq[0], sq[1], sq[2] // 2), levels, flow, level + 1)
        squeezed = np.concatenate([inner, np.full(inner.shape, level, np.int32)], axis=-1)
    # data -> latent ends each level with an unsqueeze (depth_to_space)
    return tf.nn.depth_to_space(squeezed[None].astype(np.float32), 2).numpy()[0].astype(np.int32)


def level_map(model):
    """The level of every latent entry, int32 `[*latent_shape]`: 0 is factored out first (the
    finest scale), `num_levels(model) - 1` is the top."""
    levels = num_levels(model)
    if levels == 1:
        return np.zeros(model.latent_shape, np.int32)
    return _level_ids(tuple(model.latent_shape), levels, model.config_.flow, 0)


def level_temperatures(model, temperature):
    """Per-entry temperatures `[*latent_shape]` from one float or one per level (finest first)."""
    t = np.asarray(temperature, np.float32)
    levels = num_levels(model)
    if t.ndim == 0:
        t = np.full(levels, float(t), np.float32)
    if t.ndim != 1 or len(t) != levels:
        raise ValueError(f"temperature must be a float or {levels} floats (one per level, finest first) for this "
                         f"model; received {np.asarray(temperature).tolist()}.")
    if np.any(~np.isfinite(t)) or np.any(t < 0):
        raise ValueError(f"temperatures must be finite and >= 0; received {t.tolist()}.")
    return t[level_map(model)]


def draw_latent(model, n, temperature=1.0, seed=None):
    """`n` base draws `[n, *latent_shape]`, each level's noise scaled by its temperature.

    `sampling.draw_latent` with `scale = level_temperatures(model, temperature)`: an int
    `seed` gives the same noise in every call (`stateless_normal(seed=[seed, 0])`, as
    `FlowModel.sample` and the SavedModel draw it), so grids at several temperatures show the
    same samples; `None` draws a fresh seed.

    Args:
      model: a `FlowModel` (its `latent_shape` and levels).
      n: Python int >= 0.
      temperature: a float, or one float per level, finest first (`level_temperatures`).
      seed: an int, a stateless pair `[2]`, or `None`.
    """
    return sampling.draw_latent(model.latent_shape, n, 1.0, seed, scale=level_temperatures(model, temperature))

"""The latent toolkit: encode, interpolate, manipulate and sample by class and per-level temperature.

Our multi-scale flows keep one latent `z` of the data's shape that holds every level: each
`Split` puts the half it factors out next to the deeper levels' latent, so `encode` returns
all of it and `decode(encode(x)) = x` up to float rounding. Interpolating or moving that full
latent therefore reconstructs its end points exactly, unlike methods that keep only the top
level and resample the rest.

* `interpolate(model, x_a, x_b, steps, method)`: `z_t = (1 - t) z_a + t z_b` (`linear`) or
  the spherical `z_t = sin((1 - t) W) / sin W z_a + sin(t W) / sin W z_b`, `cos W =
  <z_a, z_b> / |z_a||z_b|` (`spherical`, Shoemake 1985), decoded; a conditional model decodes
  with the blended one-hot label `(1 - t) c_a + t c_b`.
* `attribute_direction(model, x, has_attribute)`: `mean z(with) - mean z(without)` (openai/glow
  demo's `get_manipulators`); `class_direction(model, x, y, a, b)`: `mean z(y = b) - mean
  z(y = a)`; `manipulate(model, x, direction, strengths)`: decodes `z + alpha * direction`.
* `level_map(model)`: which level every latent entry belongs to (0 = factored out first, at the
  finest scale; `levels - 1` = the top); `draw_latent(model, n, temperature)` scales each
  level's base noise by its own temperature.

References:
  Kingma & Dhariwal, "Glow", NeurIPS 2018 (interpolation, attribute manipulation, temperature).
  openai/glow, demo/model.py (`get_manipulators`, `manipulate`).
  White, "Sampling Generative Networks", 2016 (spherical interpolation of latents).
"""
import numpy as np
import tensorflow as tf

from tfp_glow.data import quantization
from tfp_glow.models.levels import draw_latent, level_map, level_temperatures, num_levels

__all__ = ["INTERPOLATIONS", "attribute_direction", "class_direction", "decode", "draw_latent", "encode",
           "interpolate", "level_map", "level_temperatures", "manipulate", "num_levels", "slerp"]

INTERPOLATIONS = ("linear", "spherical")
_BATCH = 256


def _is_conditional(model):
    return int(getattr(model, "num_classes", 0) or 0) > 0


def _check_no_labels(model, labels, what="labels"):
    if labels is not None and not _is_conditional(model):
        raise ValueError(f"this model is unconditional (num_classes=0); {what} apply only to a class-conditional "
                         f"model (tfp-glow train --conditional).")


def encode(model, x, labels=None):
    """The full latent `[N, *latent_shape]` of raw data `x` (fixed noise), in batches."""
    _check_no_labels(model, labels)
    x = model.check_batch(x).numpy()
    if _is_conditional(model):
        y = model.check_labels(labels, len(x))
        parts = [model.encode(x[i:i + _BATCH], y[i:i + _BATCH]) for i in range(0, len(x), _BATCH)]
    else:
        parts = [model.encode(x[i:i + _BATCH]) for i in range(0, len(x), _BATCH)]
    return np.concatenate([np.asarray(p) for p in parts], axis=0)


def decode(model, z, labels=None, context=None):
    """Data `[N, *event_shape]` (flow space) of latents `z`, with labels or a context for a
    conditional model."""
    _check_no_labels(model, labels if context is None else context)
    z = tf.convert_to_tensor(np.asarray(z, np.float32))
    if _is_conditional(model):
        return np.asarray(model.decode(z, labels, context=context))
    return np.asarray(model.decode(z))


def _to_images(model, x):
    return quantization.to_uint8(x, model.n_bits).numpy() if model.is_image else np.asarray(x)


# -------------------------------------------------------------------- interpolation
def slerp(a, b, t):
    """Spherical interpolation of flat vectors `a`, `b` at `t` in [0, 1] (linear if parallel)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return (1.0 - t) * a + t * b
    return (np.sin((1.0 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def interpolate(model, x_a, x_b, steps=8, method="linear", label_a=None, label_b=None):
    """Decode the path between the latents of two examples.

    Args:
      model: a trained `FlowModel` (or `ConditionalFlowModel`: then `label_a`, `label_b`).
      x_a, x_b: raw examples `[*event_shape]`.
      steps: points on the path, end points included (>= 2).
      method: `linear` or `spherical`.

    Returns:
      dict: `t [steps]`, `z [steps, *latent]`, `x [steps, *event]` (flow space) and `images`
      (uint8 for image models).
    """
    if method not in INTERPOLATIONS:
        raise ValueError(f"method must be one of {INTERPOLATIONS}; received {method!r}.")
    if not (isinstance(steps, (int, np.integer)) and steps >= 2):
        raise ValueError(f"steps must be an int >= 2; received {steps!r}.")
    x = np.stack([np.asarray(x_a), np.asarray(x_b)])
    cond = _is_conditional(model)
    if not cond and (label_a is not None or label_b is not None):
        _check_no_labels(model, label_a if label_a is not None else label_b)
    labels = np.asarray([label_a, label_b]) if cond else None
    if cond and (label_a is None or label_b is None):
        model.check_labels(None)
    za, zb = encode(model, x, labels)
    t = np.linspace(0.0, 1.0, steps)
    if method == "linear":
        z = np.stack([(1.0 - ti) * za + ti * zb for ti in t])
    else:
        z = np.stack([slerp(za.ravel(), zb.ravel(), ti).reshape(za.shape) for ti in t])
    z = z.astype(np.float32)
    z[0], z[-1] = za, zb  # the end points are the encoded examples themselves
    context = None
    if cond:
        c = np.eye(model.num_classes, dtype=np.float32)[model.check_labels(labels, 2)]
        context = ((1.0 - t)[:, None] * c[0] + t[:, None] * c[1]).astype(np.float32)
    xs = decode(model, z, context=context) if cond else decode(model, z)
    return {"t": t, "z": z, "x": xs, "images": _to_images(model, xs)}


# --------------------------------------------------------------------- manipulation
def attribute_direction(model, x, has_attribute, labels=None):
    """`mean z(examples with the attribute) - mean z(examples without)`, `[*latent_shape]`.

    openai/glow demo's `get_manipulators`: `z_pos - z_neg` of the encoded examples.
    """
    has = np.asarray(has_attribute).astype(bool).reshape(-1)
    if len(has) != len(x):
        raise ValueError(f"has_attribute has {len(has)} entries for {len(x)} examples.")
    if has.all() or not has.any():
        raise ValueError("attribute_direction needs examples both with and without the attribute.")
    z = encode(model, x, labels)
    return z[has].mean(axis=0) - z[~has].mean(axis=0)


def class_direction(model, x, y, source, target, labels=None):
    """`mean z(y = target) - mean z(y = source)`: moves an example of class `source` towards `target`."""
    y = np.asarray(y).reshape(-1)
    if not (y == source).any() or not (y == target).any():
        raise ValueError(f"class_direction needs examples of both classes {source} and {target}.")
    z = encode(model, x, labels)
    return z[y == target].mean(axis=0) - z[y == source].mean(axis=0)


def manipulate(model, x, direction, strengths=(-1.0, -0.5, 0.0, 0.5, 1.0, 1.5), labels=None):
    """Decode `z(x) + alpha * direction` for each strength `alpha`.

    Returns:
      dict: `strengths [S]`, `x [N, S, *event]` (flow space), `images` (uint8 for images).
    """
    strengths = np.asarray(strengths, np.float32).reshape(-1)
    z = encode(model, x, labels)
    d = np.asarray(direction, np.float32)
    if d.shape != z.shape[1:]:
        raise ValueError(f"direction has shape {list(d.shape)}; expected the latent shape {list(z.shape[1:])}.")
    moved = (z[:, None] + strengths.reshape((1, -1) + (1,) * d.ndim) * d).astype(np.float32)  # [N, S, ...]
    flat = moved.reshape((-1,) + z.shape[1:])
    rep = None if labels is None else np.repeat(np.asarray(labels), len(strengths))
    xs = decode(model, flat, rep).reshape(moved.shape[:2] + tuple(model.event_shape))
    return {"strengths": strengths, "x": xs, "images": _to_images(model, xs)}

"""`FlowModel.summary()`: the flow's levels and steps with their parameter counts.

Keras' own summary lists the Keras layers a model tracks; a flow's layers sit inside TFP
bijectors, so Keras would show anonymous conditioner networks and parameter holders with
output shape `?`. This walks the bijector tree instead, in the data -> latent order
(`inverse`), one row per level, step and bijector:

- a `tfb.Chain` is a row with its parts below it; Glow's steps are shown collapsed (one row
  each) unless `expand_nested=True`;
- a `Split` is a row with two parts: its learned prior and the inner level it recurses on;
- the shape is the event shape coming out of the row on the latent side;
- `Param #` counts every variable of the row's subtree (trainable or not, as Keras counts
  weights), so a row's count is the sum of its parts', and the top row's is
  `model.count_params()`.
"""
import numpy as np
import tensorflow as tf

from tfp_glow.bijectors import Split
from tfp_glow.bijectors.walk import _CHAIN, _INVERT

__all__ = ["flow_rows", "format_summary"]


def _count(variables):
    return int(sum(np.prod(v.shape) for v in variables))


def _kind(b):
    if isinstance(b, _CHAIN):
        unit = getattr(b, "_flow_unit", None)
        return f"Chain ({unit})" if unit else "Chain"
    if isinstance(b, _INVERT):
        return f"Invert({type(b.bijector).__name__})"
    return type(b).__name__


def _latent_shape(b, shape):
    return tuple(tf.TensorShape(b.inverse_event_shape(shape)).as_list())


def flow_rows(bijector, event_shape, expand_nested=False):
    """Rows `(depth, name, kind, shape_out, params, trainable_params)` of a bijector tree.

    Args:
      bijector: the flow's bijector (data -> latent is its `inverse`).
      event_shape: the data's event shape (Python ints).
      expand_nested: list the bijectors inside each Glow step too.
    """
    rows = []

    def visit(b, shape, depth):
        out = _latent_shape(b, shape)
        rows.append((depth, b.name, _kind(b), out, _count(b.variables), _count(b.trainable_variables)))
        if isinstance(b, _CHAIN):
            if getattr(b, "_flow_unit", None) == "step" and not expand_nested:
                return out
            inner_shape = shape
            for part in b.bijectors:  # `inverse` runs the parts first to last
                inner_shape = visit(part, inner_shape, depth + 1)
        elif isinstance(b, Split):
            prior = list(b.conditioner.weights) if b.conditioner is not None else []
            own = [w.value for w in prior]
            rows.append((depth + 1, f"{b.name}_prior", "learned prior" if own else "standard normal",
                         (*shape[:-1], shape[-1] // 2), _count(own), _count([w for w in own if w.trainable])))
            if b.inner is not None:
                visit(b.inner, (*shape[:-1], shape[-1] // 2), depth + 1)
        return out

    visit(bijector, tuple(int(d) for d in event_shape), 0)
    return rows


def format_summary(model, expand_nested=False, show_trainable=False, line_length=None, layer_range=None):
    """The text of `FlowModel.summary()`.

    Args:
      model: a `FlowModel`.
      expand_nested: list the bijectors inside Glow's steps.
      show_trainable: add a column with each row's trainable parameter count.
      line_length: total width (default: fitted to the rows, at least 80).
      layer_range: `[first, last]` row names: print only the rows from `first` to `last`.
    """
    rows = flow_rows(model.distribution.bijector, model.event_shape, expand_nested)
    if layer_range is not None:
        names = [r[1] for r in rows]
        if len(layer_range) != 2 or any(n not in names for n in layer_range):
            raise ValueError(f"layer_range must be [first, last] row names of the summary; received "
                             f"{layer_range!r}. Rows: {names}.")
        lo, hi = names.index(layer_range[0]), names.index(layer_range[1])
        rows = rows[lo:hi + 1]
    cells = [("  " * d + f"{name} ({kind})", str(list(shape)), f"{p:,}", f"{t:,}")
             for d, name, kind, shape, p, t in rows]
    head = ("Unit (bijector), data -> latent", "Shape out", "Param #", "Trainable")
    ncol = 4 if show_trainable else 3
    widths = [max(len(c[i]) for c in cells + [head]) + 2 for i in range(ncol)]
    if line_length:
        widths[0] = max(20, line_length - sum(widths[1:]))
    total_width = sum(widths)

    def line(c):
        return "".join(c[i].ljust(widths[i]) if i == 0 else c[i].rjust(widths[i]) for i in range(ncol)).rstrip()

    trainable = _count(model.trainable_weights)
    total = _count(model.weights)
    flow = model.config_
    data = f"{model.n_bits}-bit images" if model.is_image else "float vectors"
    out = [f'Model: "{model.name}": {flow.flow} on {data} of shape {list(model.event_shape)}, '
           f'latent shape {list(model.latent_shape)}',
           "=" * total_width, line(head), "=" * total_width]
    out += [line(c) for c in cells]
    out += ["=" * total_width,
            f" Total params: {total:,}",
            f" Trainable params: {trainable:,}",
            f" Non-trainable params: {total - trainable:,}",
            "_" * total_width]
    return "\n".join(out)


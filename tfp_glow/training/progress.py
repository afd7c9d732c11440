"""`EpochLine`: Keras' progress display with one short line per epoch, each figure once.

A `FlowModel` logs `loss` (the training objective, which is `bits_per_dim` for images), `nll`
(the same figure in nats per example), `grad_norm` and the count `nonfinite_steps`, and Keras'
`ProgbarLogger` prints all of them with their `val_` twins (past 250 characters, with the count
as `0.0000e+00`). The line shown here keeps every figure once: `loss` is dropped where it equals
`bits_per_dim` or `nll`, `nll` where `bits_per_dim` is shown (`nll = bpd * D ln 2 + const`);
counts print as integers. `metrics.csv`, TensorBoard and `History` keep every log.
"""
import math
import sys
import time

import keras

__all__ = ["EpochLine", "epoch_figures", "format_figures", "COUNTS"]

COUNTS = ("nonfinite_steps",)  # logs that count something: printed as integers


def _same(a, b):
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
    except (TypeError, ValueError):
        return False


def epoch_figures(logs):
    """The logs worth showing, in display order: `[(name, value)]`.

    The main figure (`bits_per_dim`, else `nll`, else `loss`) comes first, then its `val_`
    twin, then the other logs in Keras' (sorted) order; duplicates of the main figure are
    dropped (see the module doc).
    """
    logs = dict(logs or {})
    main = next((k for k in ("bits_per_dim", "nll", "loss") if k in logs), None)
    drop = set()
    for prefix in ("", "val_"):
        shown = [prefix + k for k in ("bits_per_dim", "nll") if prefix + k in logs]
        if shown and any(_same(logs.get(prefix + "loss"), logs[k]) for k in shown):
            drop.add(prefix + "loss")
        if prefix + "bits_per_dim" in logs:
            drop.add(prefix + "nll")
    first = [k for k in (main, f"val_{main}") if k and k in logs]
    rest = sorted(k for k in logs if k not in drop and k not in first and not k.startswith("val_"))
    rest += sorted(k for k in logs if k not in drop and k not in first and k.startswith("val_"))
    return [(k, logs[k]) for k in first + rest]


def _format_value(name, value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if name in COUNTS and v.is_integer():
        return str(int(v))
    return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.4e}"


def format_figures(logs):
    """`"bits_per_dim: 5.4062 - val_bits_per_dim: 5.1077 - grad_norm: 0.5803 - nonfinite_steps: 0"`."""
    return " - ".join(f"{k}: {_format_value(k, v)}" for k, v in epoch_figures(logs))


class EpochLine(keras.callbacks.ProgbarLogger):
    """Keras' `ProgbarLogger` (pass it in `callbacks`: Keras then adds no progress bar of its
    own) whose epoch line is `"80/80 - 6s - 74ms/step - " + format_figures(logs)`.

    With `fit(verbose=1)` the live bar shows the main figure and `grad_norm`, and the epoch line
    replaces it when the epoch ends; with `verbose=2` only the epoch line is printed. `evaluate`
    and `predict` keep Keras' display.
    """

    def __init__(self):
        super().__init__()
        self._t0 = None
        self._steps = 0
        self._in_fit = False

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)  # "Epoch 1/30", as Keras prints it
        self._t0, self._steps = time.time(), 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps = batch + 1
        if self.verbose == 1:
            live = [(k, v) for k, v in epoch_figures(logs) if k not in COUNTS][:2]
            super().on_train_batch_end(batch, dict(live))

    def on_epoch_end(self, epoch, logs=None):
        if not self.verbose:
            return
        seconds = time.time() - self._t0
        steps = self.target or self._steps
        per_step = seconds / max(1, self._steps)
        per_step = f"{per_step * 1e3:.0f}ms/step" if per_step >= 1e-3 else f"{per_step * 1e6:.0f}us/step"
        line = f"{steps}/{steps} - {seconds:.0f}s - {per_step} - {format_figures(logs)}"
        # verbose 1: the live bar (on a terminal) is cleared and replaced by the epoch line
        print(("\r\x1b[K" if self.verbose == 1 else "") + line, file=sys.stdout, flush=True)

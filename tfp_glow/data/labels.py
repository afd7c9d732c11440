"""Class labels: checked before any step, with clear errors.

A class-conditional model takes integer labels `y [N]` in `0..num_classes-1`; an
unconditional one takes none. `check_labels` and `labels_in` are what `FlowModel.fit` and
`ConditionalFlowModel` call before training, sampling or scoring anything. numpy only.
"""
import numpy as np

__all__ = ["check_labels", "labels_in", "reject_labels"]


def check_labels(labels, num_classes, n=None, what="labels"):
    """`labels` as an int32 array `[N]`, after checking them against the model.

    Args:
      labels: integer labels `[N]` (array-like or tensor), or `None`.
      num_classes: the model's number of classes `K >= 2`.
      n: the number of examples they label (`None`: any; a scalar label is then allowed
        and returned as `[1]`).
      what: how the messages name them.

    Raises:
      ValueError: missing labels, a non-integer dtype, a wrong shape or count, or a label
        outside `0..K-1`.
    """
    if labels is None:
        raise ValueError(f"this model is class-conditional (num_classes={num_classes}): {what} are needed, "
                         f"integers in 0..{num_classes - 1}, one per example.")
    y = np.asarray(labels.numpy() if hasattr(labels, "numpy") else labels)
    if y.dtype == bool or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{what} must be integers in 0..{num_classes - 1}; received dtype {y.dtype} "
                         f"(class indices, not one-hot vectors or floats).")
    if y.ndim == 0 and n is None:
        y = y.reshape(1)
    if y.ndim != 1:
        raise ValueError(f"{what} must have shape [N] (one class index per example); received shape "
                         f"{list(y.shape)}.")
    if n is not None and len(y) != int(n):
        raise ValueError(f"{what}: {len(y)} labels for {int(n)} examples; expected one label per example.")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        bad = y[(y < 0) | (y >= num_classes)]
        raise ValueError(f"{what} out of range: this model has {num_classes} classes (0..{num_classes - 1}); "
                         f"received {sorted(set(bad.tolist()))[:10]}.")
    return y.astype(np.int32)


def labels_in(x, y=None):
    """Whether training data carry labels: `y` given, or a dataset whose elements are
    `(image, label)` pairs (an integer second part) or dicts with a `label` key."""
    if y is not None:
        return True
    spec = getattr(x, "element_spec", None)
    if spec is None:
        if isinstance(x, dict):
            return "label" in x or "y" in x
        return False
    if isinstance(spec, dict):
        return "label" in spec or "y" in spec
    if isinstance(spec, (tuple, list)) and len(spec) >= 2:
        return getattr(spec[1], "dtype", None) is not None and spec[1].dtype.is_integer
    return False


def reject_labels(x, y=None):
    """Raise a clear `ValueError` if an unconditional model is handed labels."""
    if labels_in(x, y):
        raise ValueError("this model is unconditional (num_classes=0) but the data carry labels; build it "
                         "with num_classes=K (a ConditionalFlowModel, `tfp-glow train --conditional`) to "
                         "train p(x|y), or pass the images alone.")

"""The conditioning input of `FlowModel`: from what the user or the data give to the flow's kwarg.

A conditional flow's bijector takes a context `c [N, K]` as the TFP kwarg `conditional_input`
(`tfp_glow.bijectors.conditioning`). The model takes it explicitly wherever data meet the flow:
as a batch's `y` in the steps, and as `labels=` or `context=` in `initialize`, `log_prob`,
`sample`, `encode` and `decode`. `context` is the tensor itself; `labels` are a class-conditional
model's class indices, which `context(labels)` maps to one-hot vectors (`ConditionalFlowModel`).
An unconditional model refuses both.
"""
import numpy as np
import tensorflow as tf

from tfp_glow.data import labels as labels_lib
from tfp_glow.bijectors.conditioning import CONDITIONAL_INPUT
from tfp_glow.training import inputs

__all__ = ["ContextMixin"]


class ContextMixin:
    """The conditioning input of `FlowModel` (a mixin of it; `context_dim` is set by the model)."""

    #: what a batch's `y` is to a conditional flow: "context" (the tensor) or "labels" (class indices)
    targets_are = "context"

    @property
    def is_conditional(self):
        """Whether the flow takes a conditioning input (`context_dim > 0`)."""
        return self.context_dim > 0

    def context(self, targets):
        """The flow's `conditional_input [N, K]` from a batch's targets: a context tensor as it is.

        Graph-safe and unchecked (the steps call it); a class-conditional model maps labels to
        one-hot vectors.
        """
        return tf.cast(targets, tf.float32)

    def check_labels(self, labels, n=None, what="labels"):
        """Labels as int32 `[N]`, checked: a model that is not class-conditional refuses them."""
        raise ValueError(f"{what} name the classes of a class-conditional model (ConditionalFlowModel, "
                         f"`tfp-glow train --conditional`); "
                         + (f"this flow takes a context [N, {self.context_dim}]: pass context=."
                            if self.is_conditional else "this model is unconditional (num_classes=0)."))

    def _resolve_labels(self, n, labels, default):
        """The labels to use when `labels` (maybe `None`) are given, for a purpose's `default`
        ("cycle": sampling, "first": initialisation, `None`: required). Class-conditional only."""
        return labels

    def bijector_kwargs(self, context):
        """The bijector kwargs that carry `context` (none for `None`)."""
        return {} if context is None else {CONDITIONAL_INPUT: context}

    def _class_hint(self):
        """Where a user with class labels should go (a `FlowModel` takes a float context)."""
        return (f" For class labels 0..{self.context_dim - 1}, use tg.ConditionalFlowModel (this config has "
                f"num_classes={self.context_dim}); FlowModel takes the conditioning input as a float context "
                f"[N, {self.context_dim}].")

    def _needs_context(self, where="the data"):
        return ValueError(f"this flow is conditional (a context of size {self.context_dim}): {where} must carry "
                          f"it, as (x, context) pairs or context=[N, {self.context_dim}]." + self._class_hint())

    def _refuse_conditioning(self):
        return ValueError("this model is unconditional (num_classes=0): labels and a context apply only to a "
                          "conditional flow (ConditionalFlowModel, `tfp-glow train --conditional`).")

    def _checked_context(self, context, n=None):
        c = tf.convert_to_tensor(context)
        rows = "N" if n is None else int(n)
        if c.dtype.is_integer or c.dtype.is_bool or c.shape.rank == 1:
            raise ValueError(f"context must be a float tensor [{rows}, {self.context_dim}]; received "
                             f"{c.dtype.name} {c.shape.as_list()}, which look like class labels." + self._class_hint())
        c = tf.cast(c, tf.float32)
        if c.shape.rank != 2 or c.shape[-1] != self.context_dim or (n is not None and c.shape[0] != n):
            raise ValueError(f"context must have shape [{rows}, {self.context_dim}]; received {c.shape.as_list()}.")
        return c

    def conditional_input(self, n, labels=None, context=None, default=None):
        """The flow's conditioning input for `n` examples, checked (eager): `None` for an
        unconditional model, else float32 `[n, K]` from `context` or from `labels`.

        Args:
          n: Python int, the examples (`None`: any).
          labels: int labels `[n]` of a class-conditional model, or `None`.
          context: the conditioning tensor `[n, K]` itself, or `None`.
          default: without either, `"cycle"` (classes 0..K-1 in turn), `"first"` (class 0) or
            `None` (an error: the input is needed).
        """
        if not self.is_conditional:
            if labels is not None or context is not None:
                raise self._refuse_conditioning()
            return None
        if context is not None:
            return self._checked_context(context, n)
        labels = self._resolve_labels(n, labels, default)
        if labels is None and self.targets_are == "context":
            raise self._needs_context("the call")
        return self.context(self.check_labels(labels, n))

    def _graph_context(self, labels, context):
        """`conditional_input` from `labels` or `context` inside a graph (no eager checks)."""
        if context is None and labels is not None:
            context = self.context(labels)
        if context is not None and not self.is_conditional:
            raise self._refuse_conditioning()
        if context is None and self.is_conditional:
            if self.targets_are == "labels":
                self.check_labels(None)  # raises: labels are needed
            raise self._needs_context("the call")
        return context

    def _step_context(self, y):
        """A step's `conditional_input` from its batch's targets `y` (`None` when unconditional)."""
        if not self.is_conditional:
            return None
        if y is None:
            raise self._needs_context()
        return self.context(y)

    def _training_context(self, context, seed):
        """The context a training step's flow sees (`ConditionalFlowModel` drops labels here)."""
        return context

    def _check_targets(self, y, n, what="labels"):
        if self.targets_are == "labels":
            return self.check_labels(y, n, what)
        return self._checked_context(y, n).numpy()

    def _check_fit_targets(self, x, y):
        """A conditional model's `fit` input checked before any step: the targets of array input
        (checked), or `None` for a dataset (its first batch checked)."""
        if isinstance(x, tf.data.Dataset):
            if y is not None:
                raise ValueError("with a tf.data.Dataset, the labels come in its elements: (image, label); "
                                 "y must be None.")
            spec = x.element_spec
            carried = (labels_lib.labels_in(x) if self.targets_are == "labels"
                       else isinstance(spec, (tuple, list)) and len(spec) >= 2)
            if not carried:
                raise ValueError(f"this model is conditional ({self._what_conditions()}): the dataset must yield "
                                 f"(image, label) pairs, or dicts with 'image' and 'label'; its elements are "
                                 f"{spec}." + self._class_hint())
            for batch in x.take(1):
                xb, yb, _ = inputs.unpack(batch)
                self._check_targets(yb, len(xb))
            return None
        if isinstance(x, dict) and y is None:
            y = x.get("label", x.get("y"))
        if y is None:
            raise ValueError(f"this model is conditional ({self._what_conditions()}): labels are needed; call "
                             f"fit(x, y) with {self._what_targets()}." + self._class_hint())
        return self._check_targets(y, len(inputs.features(x)))

    def _what_conditions(self):
        return f"a context of size {self.context_dim}"

    def _what_targets(self):
        return f"a float context y [N, {self.context_dim}]"


def as_label_array(labels):
    """Labels as a numpy array (an empty list as int32, whatever numpy guesses)."""
    y = np.asarray(labels)
    return y.astype(np.int32) if y.size == 0 and y.dtype == np.float64 else y

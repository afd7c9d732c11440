"""Write a model as a SavedModel: its served variables, metadata and signature functions.

One entry point for every model: `export_saved_model` writes an unconditional model's
signatures, or a class-conditional model's (with `label` inputs and `classify`);
`export_conditional_saved_model` is the same, for conditional models only.
"""
import tensorflow as tf

from tfp_glow.numerics import averaging
from tfp_glow.numerics import precision
from tfp_glow.serving import layout
from tfp_glow.serving.signatures import serving_functions, signature_names

__all__ = ["export_conditional_saved_model", "export_saved_model"]


class _FlowServing(tf.Module):
    """What the SavedModel holds: the flow's variables (and `log p(y)`), its metadata, the functions."""

    def __init__(self, model, fns, names, info):
        conditional = "num_classes" in info
        super().__init__(name="tfp_glow_conditional_serving" if conditional else "tfp_glow_serving")
        self.flow_variables = _served_variables(model)
        if conditional:
            self.class_log_prior = model.class_log_prior.value
        self.config_json = layout.metadata_variable(info)
        for name in names:
            setattr(self, name, fns[name])


def _served_variables(model):
    """The variables a SavedModel holds: the distribution's, and `q(u | x)`'s when variational."""
    deq = getattr(model, "dequantizer", None)
    # a Keras layer: its KerasVariables wrap the tf.Variables that get saved
    return list(model.distribution.variables) + ([getattr(v, "value", v) for v in deq.variables]
                                                 if deq is not None else [])


def _check_variables(model):
    """Every Keras weight of the model must be a served variable (so it is saved)."""
    served = {id(v) for v in _served_variables(model)}
    if int(getattr(model, "num_classes", 0) or 0):
        served.add(id(model.class_log_prior.value))
    # the weight average is saved as the values of the flow's variables (the exports swap it in)
    served |= {id(getattr(v, "value", v)) for v in averaging.average_variables(model)}
    missing = [w.path for w in model.weights if id(getattr(w, "value", w)) not in served]
    if missing:
        raise ValueError(
            f"Cannot export: {len(missing)} weights of the model are not variables of its distribution "
            f"(or its dequantizer), so the SavedModel would not hold them: {missing[:10]}.")


def _names(model, signatures, serving_default):
    """The signature names to write, checked against what `model` offers."""
    available = signature_names(model)
    names = tuple(available if signatures is None else ([signatures] if isinstance(signatures, str) else signatures))
    unknown = [s for s in names if s not in available]
    if unknown or not names:
        kind = ("a class-conditional" if int(getattr(model, "num_classes", 0) or 0) else
                "this image" if model.is_image else "this vector")
        raise ValueError(f"Unknown signatures {unknown or names}; {kind} model exports {list(available)}.")
    if serving_default is not None and serving_default not in names:
        raise ValueError(f"serving_default={serving_default!r} is not among the exported signatures {list(names)}.")
    return names


def export_saved_model(model, path, signatures=None, serving_default="log_prob", version=None):
    """Write `model` as a SavedModel with named serving signatures (listed in tfp_glow.serving).

    The model must be initialised (trained, or `model.initialize(batch)` run): an
    uninitialised actnorm would serve meaningless numbers. A mixed-precision model is written
    as its float32 twin, a model with a weight average with the averages as its weights.

    Args:
      model: a `FlowModel`, or a class-conditional one (`ConditionalFlowModel`), whose
        signatures then take labels and include `classify`.
      path: directory to write (created; an existing SavedModel there is overwritten).
      signatures: names to export, a subset of `signature_names(model)`; default all.
      serving_default: signature also exported as `serving_default` (what TF Serving calls
        when a request names none), or `None`.
      version: `None` writes the SavedModel into `path`; an int (or `"next"`) writes it into
        `path/<version>/`, the layout TF Serving loads (`--model_base_path=path`). An existing
        version is never overwritten.

    Returns:
      The directory written, as a string.

    Raises:
      ValueError: unknown signature names, an uninitialised model, weights the distribution
        (and dequantizer) do not hold, or a bad `version`.
      FileExistsError: `path/<version>` exists.
    """
    if int(getattr(model, "num_classes", 0) or 0) and not model.is_image:
        raise ValueError("Cannot export a class-conditional vector model: the conditional signatures are built "
                         "and tested for images only.")
    names = _names(model, signatures, serving_default)
    if not model.is_initialized:
        raise ValueError("Cannot export an uninitialised model: run model.initialize(batch) or fit it first "
                         "(its actnorm layers still hold their zero initial values).")
    model = precision.float32_twin(model)  # a mixed-precision model serves a float32 model's figures
    _check_variables(model)
    path = layout.target_path(path, version)
    fns = serving_functions(model)
    info = layout.metadata(model, names, serving_default)
    with averaging.averaged_weights(model):  # the SavedModel holds the averages as the flow's weights
        # functions, not concrete functions: tf.saved_model.save traces them in its own context
        # anyway, so tracing them here too would double the export time
        sigs = {name: fns[name] for name in names}
        if serving_default is not None:
            sigs["serving_default"] = sigs[serving_default]
        tf.saved_model.save(_FlowServing(model, fns, names, info), path, signatures=sigs)
    layout.write_metadata(path, info)
    return path


def export_conditional_saved_model(model, path, signatures=None, serving_default="log_prob", version=None):
    """`export_saved_model` of a class-conditional image model (`ConditionalFlowModel`).

    Args:
      model: an initialised `ConditionalFlowModel` on images.
      path, signatures, serving_default, version: as for `export_saved_model`; `signatures` a
        subset of `CONDITIONAL_SIGNATURES`.

    Returns:
      The directory written, as a string.

    Raises:
      ValueError: an unconditional or non-image model, and as `export_saved_model`.
    """
    if not int(getattr(model, "num_classes", 0) or 0) or not model.is_image:
        raise ValueError("export_conditional_saved_model exports class-conditional image models; use "
                         "export_saved_model for unconditional ones.")
    return export_saved_model(model, path, signatures, serving_default, version)

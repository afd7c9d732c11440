"""Keras-side persistence: refuse weights of another configuration before loading any.

Keras 3 `load_weights` assigns layer after layer and raises only at the first layer that does
not fit, so a file from another configuration can leave a model half overwritten; a file with
extra layers is even loaded without a word. `check_weights_compatible` (which
`FlowModel.load_weights` calls first) compares the whole file with the model up front.

Full saves (`model.save("run.keras")`, `keras.models.load_model`): `FlowModel` is registered
serializable, its `get_config` rebuilds the same flow, and the archive holds every weight
(actnorm's `initialized` flag included) and the optimizer state. Because `FlowModel` overrides
`compile`, Keras does not recompile it on loading (and then drops the optimizer state) unless
`FlowModel.compile_from_config` delegates to `compile_from_config` here.
"""
import json
import os
import tempfile
import warnings
import zipfile

import h5py
import keras

from tfp_glow.numerics import averaging
from tfp_glow.models import WEIGHTS_FORMAT_VERSION, OldWeightsWarning, old_weights_message

__all__ = ["check_weights_compatible", "compile_from_config", "flow_compile_options", "weights_structure",
           "model_weights_structure", "annotate_weights_file", "CONFIG_ATTR"]

#: Root attribute of a `.weights.h5` file that `annotate_weights_file` writes.
CONFIG_ATTR = "tfp_glow_config"

# Top-level entries that are not the model's own weights. Keras itself skips an optimizer
# whose variable count differs (with a warning), so it cannot half-load the model.
_IGNORED_ROOTS = ("optimizer",)
# The weight average (`averaging.WeightAverage`) may be there or not, in the file and in the
# model: without it in the file the model's average restarts; without it in the model the
# file's raw weights load. Its shapes are the trainable variables', which are compared.
_OPTIONAL_PATHS = (averaging.WEIGHTS_PATH,)
_MAX_LISTED = 8


def _ignored(path):
    return path.split("/", 1)[0] in _IGNORED_ROOTS or path in _OPTIONAL_PATHS


def _entry_sort_key(key):
    return (0, int(key)) if str(key).isdigit() else (1, str(key))


def weights_structure(h5file):
    """`{layer path: (layer name, {variable key: shape})}` of an open Keras 3 weights file.

    Args:
      h5file: an open `h5py.File` written by Keras 3 (`.weights.h5`, or the
        `model.weights.h5` inside a `.keras` archive).
    """
    out = {}

    def visit(name, obj):
        if not isinstance(obj, h5py.Group) or name.split("/")[-1] != "vars":
            return
        variables = {k: tuple(int(d) for d in v.shape) for k, v in obj.items() if isinstance(v, h5py.Dataset)}
        path = name[:-len("vars")].rstrip("/")
        if variables and not _ignored(path):
            label = obj.attrs.get("name", "")
            out[path] = (label.decode() if isinstance(label, bytes) else str(label), variables)

    h5file.visititems(visit)
    return out


class _ShapeOnlyStore:
    """A write-mode Keras weights store that records shapes and copies nothing."""

    def __init__(self):
        self.entries, self.names = {}, {}

    def make(self, path, metadata=None):
        self.names[path] = (metadata or {}).get("name", "")
        return self.entries.setdefault(path, {})


def _structure_from_store(store):
    out = {}
    for path, variables in store.entries.items():
        if variables and not _ignored(path):
            out[path] = (store.names.get(path, ""),
                         {k: tuple(int(d) for d in v.shape) for k, v in variables.items()})
    return out


def model_weights_structure(model):
    """What `model.save_weights` would write, as in `weights_structure`, without writing values.

    Walks the model with Keras' own saving traversal (so paths match the files exactly) and a
    store that records shapes only; if that private API is unavailable, saves the weights to a
    temporary file and reads its structure.
    """
    try:
        from keras.src.saving import saving_lib

        class Store(_ShapeOnlyStore, saving_lib.NpzIOStore):  # passes Keras' isinstance check
            pass

        store = Store()
        saving_lib._save_state(model, weights_store=store, assets_store=None, inner_path="",
                               visited_saveables=set())
        return _structure_from_store(store)
    except (ImportError, AttributeError, TypeError):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.weights.h5")
            model.save_weights(path)
            with h5py.File(path, "r") as f:
                return weights_structure(f)


def _describe_model(model):
    cfg = getattr(model, "config_", None)
    if cfg is None:
        return type(model).__name__
    args = ", ".join(f"{k}={v!r}" for k, v in sorted(cfg.kwargs.items()))
    bits = f"n_bits={model.n_bits}" if getattr(model, "n_bits", None) is not None else "vectors"
    return f"{cfg.flow} on event shape {list(cfg.event_shape)}" + (f" with {args}" if args else "") + f", {bits}"


def _warn_if_old(model, attrs, path):
    """Warn when the file predates what its weights mean now (models.WEIGHTS_FORMAT_VERSION)."""
    cfg = getattr(model, "config_", None)
    if cfg is None:
        return
    raw = attrs.get(CONFIG_ATTR)
    version = None
    if raw is not None:
        try:
            version = json.loads(raw.decode() if isinstance(raw, bytes) else raw).get("format_version")
        except (ValueError, AttributeError):
            version = None
    note = old_weights_message(cfg.to_dict(), version, f"Weights file {path!r}")
    if note:
        warnings.warn(note, OldWeightsWarning, stacklevel=3)


def _describe_saved(attrs):
    raw = attrs.get(CONFIG_ATTR)
    if raw is None:
        return None
    try:
        info = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        cfg = info["config"]
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(cfg.get("kwargs", {}).items()))
        bits = f"n_bits={info['n_bits']}" if info.get("n_bits") is not None else "vectors"
        return (f"{cfg['flow']} on event shape {list(cfg['event_shape'])}" + (f" with {args}" if args else "")
                + f", {bits}")
    except (ValueError, KeyError, TypeError):
        return None


def _count(structure):
    return sum(len(v) for _, v in structure.values())


def _label(path, name):
    return f"'{name}' ({path})" if name else f"'{path}'"


def _differences(saved, expected):
    """Human-readable differences: missing and extra layers first, then counts, then shapes."""
    layers, counts, shapes = [], [], []
    for path in sorted(set(saved) | set(expected)):
        if path not in expected:
            name, variables = saved[path]
            layers.append(f"{_label(path, name)}: {len(variables)} variables in the file, no such layer in this model")
        elif path not in saved:
            name, variables = expected[path]
            layers.append(f"{_label(path, name)}: {len(variables)} variables in this model, missing from the file")
        else:
            s_name, s_vars = saved[path]
            e_name, e_vars = expected[path]
            label = _label(path, e_name or s_name)
            if sorted(s_vars) != sorted(e_vars):
                counts.append(f"{label}: {len(s_vars)} variables in the file, {len(e_vars)} in this model")
                continue
            for key in sorted(e_vars, key=_entry_sort_key):
                if s_vars[key] != e_vars[key]:
                    shapes.append(f"{label} variable {key}: shape {list(s_vars[key])} in the file, "
                                  f"{list(e_vars[key])} in this model")
    return layers + counts + shapes


def _open_weights(path):
    """(h5py.File, closer) for a `.weights.h5` or a `.keras` archive; None for other formats."""
    if path.endswith(".weights.h5"):
        f = h5py.File(path, "r")
        return f, f.close
    if path.endswith(".keras"):
        archive = zipfile.ZipFile(path, "r")
        try:
            member = archive.open("model.weights.h5", "r")
        except KeyError:
            archive.close()
            return None
        f = h5py.File(member, "r")

        def close():
            f.close()
            member.close()
            archive.close()
        return f, close
    return None


def check_weights_compatible(model, filepath):
    """Raise `ValueError` if `filepath` holds weights of another configuration than `model`.

    Reads only the file's structure (layer paths, variable counts and shapes, as Keras 3
    writes them) and compares it with what the model would save, before anything is loaded.
    The optimizer's variables are not compared (Keras skips a mismatched optimizer with a
    warning). Formats other than `.weights.h5` and `.keras`, and paths that do not exist, are
    left to Keras.

    Args:
      model: a Keras model (a `FlowModel`).
      filepath: the path given to `load_weights`.

    Raises:
      ValueError: naming the saved and expected variable counts, the model's configuration,
        the saved configuration when the file records it (`annotate_weights_file`), and the
        differing layers.
    """
    path = os.fspath(filepath)
    if not os.path.isfile(path):
        return None
    opened = _open_weights(path)
    if opened is None:
        return None
    f, close = opened
    try:
        saved = weights_structure(f)
        saved_config = _describe_saved(f.attrs)
        _warn_if_old(model, f.attrs, path)
    finally:
        close()
    expected = model_weights_structure(model)
    diffs = _differences(saved, expected)
    if not diffs:
        return None
    origin = f" (saved from {saved_config})" if saved_config else ""
    shown = "\n".join(f"  - {d}" for d in diffs[:_MAX_LISTED])
    more = f"\n  ... and {len(diffs) - _MAX_LISTED} more" if len(diffs) > _MAX_LISTED else ""
    raise ValueError(
        f"Weights file {path!r} does not fit this model: the file holds {_count(saved)} variables in "
        f"{len(saved)} layers{origin}; this model ({_describe_model(model)}) expects {_count(expected)} "
        f"variables in {len(expected)} layers. Nothing was loaded; build the model with the configuration "
        f"the weights were saved from. {len(diffs)} differences:\n{shown}{more}")


def annotate_weights_file(model, filepath):
    """Record the model's configuration in a `.weights.h5` file (a root HDF5 attribute).

    Keras ignores the attribute; `check_weights_compatible` quotes it when the file does not
    fit a model. Call it after `model.save_weights(filepath)`.
    """
    path = os.fspath(filepath)
    if not path.endswith(".weights.h5"):
        return
    cfg = getattr(model, "config_", None)
    if cfg is None:
        return
    info = {"config": cfg.to_dict(), "n_bits": getattr(model, "n_bits", None),
            "format_version": WEIGHTS_FORMAT_VERSION}
    with h5py.File(path, "a") as f:
        f.attrs[CONFIG_ATTR] = json.dumps(info, sort_keys=True)


def flow_compile_options(model):
    """The options of `FlowModel.compile` that Keras' compile config does not hold, as its arguments.

    Keras records the optimizer as compiled, its learning rate included (warmup and schedule
    already inside it), so the reload passes `warmup_steps=0` and `lr_schedule="constant"`: the
    saved rate is used as it is, never wrapped again, and the optimizer gets back the variables
    (a float rate's own) its saved state has.
    """
    return {"warmup_steps": 0, "lr_schedule": "constant", "clip_norm": model.clip_norm,
            "skip_nonfinite": model.skip_nonfinite, "max_nonfinite_steps": model.max_nonfinite_steps,
            "seed": int(getattr(model, "noise_seed", 0)), "ema_decay": model.ema_decay or None}


def compile_from_config(model, config):
    """Recompile a model loaded by `keras.models.load_model` and build its optimizer.

    Keras' own `Model.compile_from_config` refuses models that override `compile` (as
    `FlowModel` does, for its defaults), so a reloaded model would come back uncompiled and
    without its optimizer state. `FlowModel.compile_from_config` calls this: the saved compile
    arguments (Keras' and `flow_compile_options`) go through `model.compile`, and the
    optimizer's variables are created so that Keras then restores their saved values (step
    count, moments), and training continues exactly where it stopped.

    Args:
      model: the model being loaded (built).
      config: the saved compile config (`model.get_compile_config()`).
    """
    if not config:
        return
    config = keras.saving.deserialize_keras_object(config)
    model.compile(**config)
    if model.built and getattr(model, "optimizer", None) is not None:
        model.optimizer.build(model.trainable_variables)

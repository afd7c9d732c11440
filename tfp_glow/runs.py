"""The run directory written by `tfp-glow train`, and its loader.

Layout::

    RUN_DIR/config.json          {"flow_config": FlowConfig.to_dict(), "n_bits": int | None,
                                  "data": str, "eval_seed": int, "eval_batch_size": int,
                                  "val_fraction": float, "test_fraction": float, ...}
    RUN_DIR/checkpoints/         FlowCheckpoint (model + optimizer + epoch), ckpt-E per epoch
    RUN_DIR/model.weights.h5     final Keras weights (model.save_weights)
    RUN_DIR/metrics.csv          keras.callbacks.CSVLogger, one row per epoch
    RUN_DIR/logs/                keras.callbacks.TensorBoard
    RUN_DIR/samples_epochNNN.png per-epoch samples (images) or density figure (2-D data)
    RUN_DIR/samples_final.png    samples of the final model
    RUN_DIR/curves.png           training/validation bits/dim per epoch
    RUN_DIR/density.png          2-D data only: data, density, samples, latent

`load_run` rebuilds the `FlowModel` from `config.json` and loads the latest checkpoint, or
`model.weights.h5` when there is none. `train`, `sample`, `evaluate` and `export` all go
through it.
"""
import json
import os
import time
import warnings

import tensorflow as tf

from tfp_glow.models import FlowConfig, OldWeightsWarning, old_weights_message
from tfp_glow.training import FlowModel

__all__ = ["RunError", "CONFIG", "CHECKPOINTS", "WEIGHTS", "METRICS", "LOGS", "SAMPLES_FINAL",
           "CURVES", "DENSITY", "RUN_ARTIFACTS", "EVAL_BATCH_SIZE", "run_paths", "save_run_config",
           "load_run_config", "build_model", "load_run", "is_run_dir", "remove_run_files"]

CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
WEIGHTS = "model.weights.h5"
METRICS = "metrics.csv"
LOGS = "logs"
SAMPLES_FINAL = "samples_final.png"
CURVES = "curves.png"
DENSITY = "density.png"
#: Every file/folder a run writes (besides samples_epochNNN.png); what a fresh run replaces.
RUN_ARTIFACTS = (CONFIG, CHECKPOINTS, WEIGHTS, METRICS, LOGS, SAMPLES_FINAL, CURVES, DENSITY)
#: Evaluation batch size of train's final evaluation and of `evaluate` (stored in config.json).
EVAL_BATCH_SIZE = 256
FORMAT_VERSION = 2  # 2: Glow's coupling direction (models.WEIGHTS_FORMAT_VERSION)


class RunError(ValueError):
    """A run directory is missing, incomplete or does not match its config."""


def run_paths(run_dir):
    """`{name: path}` of the files of a run directory."""
    run_dir = os.fspath(run_dir)
    return {
        "config": os.path.join(run_dir, CONFIG),
        "checkpoints": os.path.join(run_dir, CHECKPOINTS),
        "weights": os.path.join(run_dir, WEIGHTS),
        "metrics": os.path.join(run_dir, METRICS),
        "logs": os.path.join(run_dir, LOGS),
        "samples_final": os.path.join(run_dir, SAMPLES_FINAL),
        "curves": os.path.join(run_dir, CURVES),
        "density": os.path.join(run_dir, DENSITY),
    }


def remove_run_files(run_dir):
    """Remove what a run wrote into `run_dir`, and nothing else; returns the removed paths.

    Goes: `config.json`, `model.weights.h5`, `metrics.csv`, `samples_final.png`,
    `samples_epochNNN.png`, `curves.png`, `density.png`, the checkpoint files in
    `checkpoints/` (`checkpoint`, `ckpt-*`) and TensorBoard event files under `logs/`; then any
    of those two folders that is left empty. A user's own file anywhere in the folder stays.
    """
    run_dir = os.fspath(run_dir)
    removed = []
    own = {CONFIG, WEIGHTS, METRICS, SAMPLES_FINAL, CURVES, DENSITY}
    for name in sorted(os.listdir(run_dir)):
        if name in own or (name.startswith("samples_epoch") and name.endswith(".png")):
            path = os.path.join(run_dir, name)
            if os.path.isfile(path):
                os.remove(path)
                removed.append(path)
    for sub, ours in ((CHECKPOINTS, lambda f: f == "checkpoint" or f.startswith("ckpt-")),
                      (LOGS, lambda f: f.startswith("events.out.tfevents"))):
        top = os.path.join(run_dir, sub)
        if not os.path.isdir(top):
            continue
        for root, dirs, files in os.walk(top, topdown=False):
            for f in files:
                if ours(f):
                    os.remove(os.path.join(root, f))
                    removed.append(os.path.join(root, f))
            if not os.listdir(root):
                os.rmdir(root)
    return removed


def is_run_dir(run_dir):
    """True if `run_dir` holds a `config.json`."""
    return os.path.isfile(os.path.join(os.fspath(run_dir), CONFIG))


def save_run_config(run_dir, model, data_name, extra=None):
    """Writes `RUN_DIR/config.json` describing `model` and its data; returns the dict written.

    Args:
      run_dir: the run directory (created if needed).
      model: a `FlowModel` (its `config_`, `n_bits` and `eval_seed` are stored).
      data_name: the data source (`digits`, a toy name, `tfds:NAME`, a path...).
      extra: more JSON-serialisable entries (training options, splits...).
    """
    os.makedirs(run_dir, exist_ok=True)
    config = {
        "format_version": FORMAT_VERSION,
        "flow_config": model.config_.to_dict(),
        "n_bits": model.n_bits,
        "data": os.fspath(data_name),
        "eval_seed": model.eval_seed,
        "eval_batch_size": EVAL_BATCH_SIZE,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    config.update(extra or {})
    path = os.path.join(run_dir, CONFIG)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True, default=_json_default)
        f.write("\n")
    os.replace(tmp, path)
    return config


def _json_default(obj):
    if isinstance(obj, tuple):
        return list(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def load_run_config(run_dir):
    """Reads and checks `RUN_DIR/config.json`.

    Raises:
      RunError: the directory or its config is missing or unreadable.
    """
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise RunError(f"run directory {run_dir!r} does not exist; train one with "
                       f"`tfp-glow train --run-dir {run_dir}`.")
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isfile(path):
        raise RunError(f"{run_dir!r} is not a tfp-glow run directory: it has no {CONFIG} "
                       f"(written by `tfp-glow train`).")
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise RunError(f"cannot read {path!r}: {e}") from e
    missing = [k for k in ("flow_config", "n_bits", "data") if k not in config]
    if missing:
        raise RunError(f"{path!r} lacks the entries {missing}; it was not written by `tfp-glow train`.")
    return config


def build_model(config, strategy=None):
    """A fresh, untrained `FlowModel` from a run config dict (inside `strategy.scope()`)."""
    strategy = strategy or tf.distribute.get_strategy()
    try:
        flow_config = FlowConfig.from_dict(config["flow_config"])
        with strategy.scope():
            return FlowModel(flow_config, n_bits=config["n_bits"], eval_seed=config.get("eval_seed", 1234))
    except (KeyError, TypeError, ValueError) as e:
        raise RunError(f"the run config cannot build a model: {type(e).__name__}: {e}") from e


def load_run(run_dir, strategy=None, return_config=False, compile=True):
    """Rebuilds a trained `FlowModel` from a run directory.

    The model is built from `config.json` (inside `strategy.scope()` if given) and loads the
    latest checkpoint of `RUN_DIR/checkpoints` if there is one, else `RUN_DIR/model.weights.h5`.
    Only the model is restored (not the optimizer). With `compile` (the default, as in
    `keras.models.load_model`) it comes back compiled with `FlowModel.compile`'s defaults and
    a fresh optimizer, so `evaluate` works at once; compile it again to choose how to train on.

    Args:
      run_dir: a directory written by `tfp-glow train`.
      strategy: optional `tf.distribute.Strategy`.
      return_config: also return the config dict.
      compile: compile the model (`FlowModel.compile()`, inside `strategy.scope()`).

    Returns:
      The `FlowModel`, or `(model, config)` with `return_config`.

    Raises:
      RunError: missing directory, config or weights, or weights that do not fit the config.
    """
    run_dir = os.fspath(run_dir)
    config = load_run_config(run_dir)
    note = old_weights_message(config["flow_config"], config.get("format_version"), f"The run in {run_dir!r}")
    if note:
        warnings.warn(note, OldWeightsWarning, stacklevel=2)
    model = build_model(config, strategy)
    paths = run_paths(run_dir)
    latest = tf.train.latest_checkpoint(paths["checkpoints"]) if os.path.isdir(paths["checkpoints"]) else None
    if latest is not None:
        try:
            status = tf.train.Checkpoint(model=model).restore(latest)
            status.expect_partial()
            status.assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            raise RunError(f"checkpoint {latest!r} does not fit the model described by {paths['config']!r}: "
                           f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    elif os.path.isfile(paths["weights"]):
        try:
            model.load_weights(paths["weights"])
        except (ValueError, KeyError, OSError) as e:
            raise RunError(f"weights {paths['weights']!r} do not fit the model described by "
                           f"{paths['config']!r}: {type(e).__name__}: {e}") from e
    else:
        raise RunError(f"{run_dir!r} has no trained weights: neither a checkpoint in "
                       f"{paths['checkpoints']!r} nor {paths['weights']!r}.")
    if compile:
        with (strategy or tf.distribute.get_strategy()).scope():
            model.compile()
    return (model, config) if return_config else model

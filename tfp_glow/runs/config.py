"""A run's config.json: writing it (`save_run_config`, `update_run_config`), reading and
checking it (`load_run_config`), and what it records (`EVAL_BATCH_SIZE`, `FORMAT_VERSION`).
"""
import json
import os
import time

from tfp_glow.models import WEIGHTS_FORMAT_VERSION
from tfp_glow.runs.data_source import data_entries
from tfp_glow.runs.layout import CONFIG, RunError, atomic_write


#: Evaluation batch size of train's final evaluation and of `evaluate` (stored in config.json).
EVAL_BATCH_SIZE = 256
#: What a run's stored weights mean (config.json's `format_version`): the weight files' version.
FORMAT_VERSION = WEIGHTS_FORMAT_VERSION


def save_run_config(run_dir, model, data_name, extra=None):
    """Writes `RUN_DIR/config.json` describing `model` and its data; returns the dict written.

    Args:
      run_dir: the run directory (created if needed).
      model: a `FlowModel` (its `config_`, `n_bits` and `eval_seed` are stored).
      data_name: the data source (`digits`, a toy name, `tfds:NAME`, a path...); a path is
        recorded resolved (`data_source.data_entries`: absolute, and relative to `run_dir`).
      extra: more JSON-serialisable entries (training options, splits...).
    """
    os.makedirs(run_dir, exist_ok=True)
    config = {
        "format_version": FORMAT_VERSION,
        "flow_config": model.config_.to_dict(),
        "n_bits": model.n_bits,
        **data_entries(data_name, run_dir),
        "eval_seed": model.eval_seed,
        "dequantization": model.dequantization,
        "noise_sigma": float(getattr(model, "noise_sigma", 0.0)),
        "label_dropout": float(getattr(model, "label_dropout", 0.0)),
        "eval_batch_size": EVAL_BATCH_SIZE,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    config.update(extra or {})
    text = json.dumps(config, indent=2, sort_keys=True, default=_json_default) + "\n"
    atomic_write(os.path.join(run_dir, CONFIG), text)
    return config


def update_run_config(run_dir, **entries):
    """Sets `entries` in an existing config.json (atomically); returns the new dict."""
    config = load_run_config(run_dir)
    config.update(entries)
    text = json.dumps(config, indent=2, sort_keys=True, default=_json_default) + "\n"
    atomic_write(os.path.join(os.fspath(run_dir), CONFIG), text)
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

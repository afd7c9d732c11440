"""A model from a run: `build_model` (a fresh `FlowModel` from a run config) and `load_run`
(the trained model of a run directory)."""
import os
import warnings

import tensorflow as tf

from tfp_glow.numerics import averaging
from tfp_glow.numerics import precision
from tfp_glow.training.conditional import make_flow_model
from tfp_glow.models import FlowConfig, OldWeightsWarning, old_weights_message
from tfp_glow.runs.checkpoints import restore_newest_intact
from tfp_glow.runs.config import load_run_config
from tfp_glow.runs.layout import RunError


def build_model(config, strategy=None):
    """A fresh, untrained `FlowModel` from a run config dict (inside `strategy.scope()`), with
    the weight average of a run trained with `--ema` (`config["ema_decay"]`; `averaging.attach`),
    so that a checkpoint's averages have variables to restore into.

    It computes in float32 throughout, whatever Keras' global policy and whatever policy the run
    trained under (`config["mixed_precision"]`): what `evaluate`, `sample`, `score` and `export`
    report is a float32 model's (the variables are float32 under every policy, so the weights
    load as they are). `tfp-glow train --resume` builds its own model under the run's policy."""
    strategy = strategy or tf.distribute.get_strategy()
    try:
        flow_config = FlowConfig.from_dict(config["flow_config"])
        with precision.float32_policy(), strategy.scope():
            model = make_flow_model(flow_config, n_bits=config["n_bits"], eval_seed=config.get("eval_seed", 1234),
                                    dequantization=config.get("dequantization", "uniform"),
                                    noise_sigma=float(config.get("noise_sigma", 0.0) or 0.0),
                                    label_dropout=float(config.get("label_dropout", 0.0) or 0.0))
            averaging.attach(model, config.get("ema_decay"))
        return model
    except (KeyError, TypeError, ValueError) as e:
        raise RunError(f"the run config cannot build a model: {type(e).__name__}: {e}") from e


def load_run(run_dir, strategy=None, return_config=False, report=None, compile=True):
    """Rebuilds a trained `FlowModel` from a run directory.

    The model is built from `config.json` (inside `strategy.scope()` if given) and loads the
    newest intact checkpoint of `RUN_DIR/checkpoints`, else `RUN_DIR/model.weights.h5`
    (`restore_newest_intact`: a corrupt checkpoint is renamed `*.corrupt` and reported). It
    computes in float32, whatever policy trained it (`build_model`). Only the model is restored
    (not the optimizer). With `compile` (the default, as in `keras.models.load_model`) it comes
    back compiled with `FlowModel.compile`'s defaults and a fresh optimizer, so `evaluate` works
    at once; compile it again to choose how to train on.
    A run trained with `--ema` comes back with its weight average on (`model.ema_decay`):
    `evaluate`, `sample`, `encode`, `decode` and the export use the averages; a recompile keeps
    them with `compile(..., ema_decay=model.ema_decay)`.

    Args:
      run_dir: a directory written by `tfp-glow train`.
      strategy: optional `tf.distribute.Strategy`.
      return_config: also return the config dict.
      report: `callable(str)` told which file was loaded and which were corrupt; by default
        corrupt files are reported as warnings (`CorruptCheckpointWarning`).
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
    restore_newest_intact(run_dir, model, report=report)
    if compile:
        with (strategy or tf.distribute.get_strategy()).scope():
            model.compile(ema_decay=model.ema_decay)
    return (model, config) if return_config else model

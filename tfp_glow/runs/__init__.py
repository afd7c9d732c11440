"""The run directory written by `tfp-glow train`, and its loader.

Layout::

    RUN_DIR/config.json          {"flow_config": FlowConfig.to_dict(), "n_bits": int | None,
                                  "data": name | absolute path, "data_relative": path
                                  from RUN_DIR (paths only), "eval_seed": int, "eval_batch_size": int,
                                  "val_fraction": float, "test_fraction": float, ...}
    RUN_DIR/checkpoints/         FlowCheckpoint (model + optimizer + epoch), ckpt-E per epoch
    RUN_DIR/model.weights.h5     final Keras weights (model.save_weights)
    RUN_DIR/metrics.csv          one row per epoch (`epoch_1based`, as the console counts)
    RUN_DIR/logs/                keras.callbacks.TensorBoard
    RUN_DIR/samples_epochNNN.png per-epoch samples (images) or density figure (2-D data)
    RUN_DIR/samples_final.png    samples of the final model
    RUN_DIR/curves.png           training/validation bits/dim per epoch
    RUN_DIR/density.png          2-D data only: data, density, samples, latent

    RUN_DIR/.lock                `RunLock`: held by the one `tfp-glow train` writing the run

`load_run` rebuilds the `FlowModel` from `config.json` and loads the newest intact checkpoint,
or `model.weights.h5` when there is none (`restore_newest_intact`). `train`, `sample`,
`evaluate` and `export` all go through it.

Safety of the run directory (what a kill -9, a second writer or a corrupt file can do):

* One writer: `tfp-glow train` holds `RunLock` (an `fcntl.flock` on `RUN_DIR/.lock`) while it
  writes. The kernel drops the lock when the process dies, so a killed run never blocks.
* One epoch record, in a fixed order (`EpochRecord`): the metrics row, then the checkpoint,
  then config.json; each file is replaced atomically (temp file + `os.replace`). On resume
  `reconcile_metrics` drops rows past the restored checkpoint: no gap, no duplicate.
* Recovery: a checkpoint is read in full (every tensor, which checks its CRC) before it is
  restored; a corrupt one is renamed `*.corrupt` and the next newest is tried.

Modules, one per idea: `layout` (the file names, `run_paths`, `RunError`, the atomic writes and
the clean-up), `config` (config.json), `data_source` (where the run's data lives: recorded
resolved, found from any folder, `--data` for moved data), `load` (`build_model`, `load_run`), `checkpoints`
(verification and recovery), `lock` (`RunLock`), `metrics` (metrics.csv) and `record`
(`EpochRecord`). Every name is re-exported here: `runs.X` is the way to use them.
"""
from tfp_glow.training.callbacks import checkpoint_epoch
from tfp_glow.runs.checkpoints import (CorruptCheckpointWarning, NothingToLoadError, find_intact_checkpoint,
                                       restore_newest_intact, verify_checkpoint)
from tfp_glow.runs.config import (EVAL_BATCH_SIZE, FORMAT_VERSION, load_run_config, save_run_config,
                                  update_run_config)
from tfp_glow.runs.layout import (CHECKPOINTS, CONFIG, CURVES, DENSITY, LOCK, LOGS, METRICS, RUN_ARTIFACTS,
                                  SAMPLES_FINAL, WEIGHTS, RunError, atomic_write, checkpoint_candidates,
                                  is_run_dir, leftover_files, remove_partial_writes, remove_run_files,
                                  run_paths, save_weights_atomically)
from tfp_glow.runs.data_source import (DataNotFoundError, check_data_matches, data_entries, is_builtin,
                                       locate_data)
from tfp_glow.runs.load import build_model, load_run
from tfp_glow.runs.lock import RunLock
from tfp_glow.runs.metrics import append_metrics_row, read_metrics_rows, reconcile_metrics
from tfp_glow.runs.record import EpochRecord

__all__ = ["RunError", "CONFIG", "CHECKPOINTS", "WEIGHTS", "METRICS", "LOGS", "SAMPLES_FINAL",
           "CURVES", "DENSITY", "RUN_ARTIFACTS", "EVAL_BATCH_SIZE", "run_paths", "save_run_config",
           "load_run_config", "build_model", "load_run", "is_run_dir", "remove_run_files",
           "RunLock", "atomic_write", "checkpoint_candidates", "verify_checkpoint", "find_intact_checkpoint",
           "checkpoint_epoch", "restore_newest_intact", "reconcile_metrics", "read_metrics_rows",
           "append_metrics_row", "EpochRecord", "LOCK", "CorruptCheckpointWarning", "NothingToLoadError",
           "leftover_files", "update_run_config", "save_weights_atomically",
           "remove_partial_writes", "DataNotFoundError", "check_data_matches", "data_entries", "is_builtin",
           "locate_data"]

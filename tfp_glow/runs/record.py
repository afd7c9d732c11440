"""`EpochRecord`: the one record per epoch (metrics row, checkpoint, config.json, in this order)."""
import os

import keras

from tfp_glow.runs.layout import METRICS
from tfp_glow.runs.metrics import append_metrics_row


class EpochRecord(keras.callbacks.Callback):
    """Writes one consistent record per epoch: the metrics row, the checkpoint, config.json.

    The order matters for a kill at any moment: a metrics row without its checkpoint is
    dropped on resume (`reconcile_metrics`) and the epoch is trained again; a checkpoint
    without its config.json update keeps the previous config (overrides such as a new lr are
    recorded once an epoch has trained with them). Each file is replaced atomically. An epoch
    the checkpoint refuses (non-finite logs or weights) updates no config.

    Args:
      run_dir: the run directory.
      checkpoint: the `callbacks.FlowCheckpoint` that saves the epoch (its `on_epoch_end`
        runs here, on every worker).
      write_config: `callable(epochs_done)` writing config.json, or None.
      chief: whether this process writes files (metrics and config).
    """

    def __init__(self, run_dir, checkpoint, write_config=None, chief=True):
        super().__init__()
        self.run_dir = os.fspath(run_dir)
        self.checkpoint = checkpoint
        self.write_config = write_config
        self.chief = chief

    def set_model(self, model):
        super().set_model(model)
        self.checkpoint.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        self.checkpoint.set_params(params)

    def on_epoch_end(self, epoch, logs=None):
        if self.chief:
            append_metrics_row(os.path.join(self.run_dir, METRICS), epoch, logs)
        skipped = len(self.checkpoint.skipped_epochs)
        self.checkpoint.on_epoch_end(epoch, logs)
        if self.chief and self.write_config is not None and len(self.checkpoint.skipped_epochs) == skipped:
            self.write_config(epoch + 1)

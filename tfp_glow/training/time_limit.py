"""A wall-clock budget for `fit`: stop at the end of the last epoch that fits in it.

After epoch `e` ends at `t_e` seconds into training, `fit` stops when `t_e + d_e > seconds`,
where `d_e` is the length of epoch `e` (the next one is taken to last as long). So a run never
starts an epoch it is not expected to finish, ends on an epoch boundary (a whole checkpoint,
a metrics row, `--resume` continues from it), and overruns the budget by at most the error of
that estimate. The first epoch always runs: it holds the tracing and compiling.
"""
import time

import keras

__all__ = ["TimeLimit"]


class TimeLimit(keras.callbacks.Callback):
    """Stops `fit` after the last epoch that fits in `seconds` of training.

    `stopped_epoch` is the 1-based epoch after which it stopped (None if `fit` ran all its
    epochs) and `elapsed` the training seconds when it did.

    Args:
      seconds: float > 0, the training budget in wall-clock seconds (from `on_train_begin`).
      clock: a function returning seconds (default `time.monotonic`), for tests.
    """

    def __init__(self, seconds, clock=time.monotonic):
        super().__init__()
        seconds = float(seconds)
        if not seconds > 0 or seconds == float("inf"):
            raise ValueError(f"TimeLimit: seconds must be a finite number > 0, got {seconds!r}.")
        self.seconds = seconds
        self._clock = clock
        self.stopped_epoch = None
        self.elapsed = 0.0

    def on_train_begin(self, logs=None):
        self._start = self._clock()
        self.stopped_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._clock()

    def on_epoch_end(self, epoch, logs=None):
        now = self._clock()
        self.elapsed = now - self._start
        if self.elapsed + (now - self._epoch_start) > self.seconds:
            self.stopped_epoch = epoch + 1
            self.model.stop_training = True

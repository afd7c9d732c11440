"""Keras 3 callbacks for training flows: NaN guard, checkpoints that resume, sample grids.

* `NaNGuard` stops `fit` at the first non-finite training loss with a `NonFiniteLossError`
  that says where it happened and where the last good checkpoint is. It raises from
  `on_train_batch_end`, so `on_epoch_end` never runs with the bad weights and no checkpoint of
  them is written.
* `FlowCheckpoint` saves model, optimizer and epoch with `tf.train.Checkpoint` /
  `tf.train.CheckpointManager` at the end of every epoch whose logs and weights are all finite,
  and restores them (`initial_epoch` for `fit`). ActNorm's `initialized` flag is a
  non-trainable weight, so a restored model is not initialised a second time.
* `SampleGrid` writes `samples_epochNNN.png` per epoch (a grid of image samples, or the 2-D
  density figure for 2-D vector models), titled with the sampling temperature, and logs it to
  TensorBoard (`tf.summary.image`) when given a log directory.

Only the chief writes files (`is_chief`); see each class for what other workers do.
"""
import math
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tfp_glow import plots

__all__ = ["NonFiniteLossError", "NaNGuard", "FlowCheckpoint", "SampleGrid", "is_chief",
           "all_weights_finite", "checkpoint_epoch"]


def is_chief(strategy=None):
    """Whether this process is the one that writes files (checkpoints, samples, CSV, logs).

    Without a cluster (no `cluster_resolver`, or no `TF_CONFIG`) every process is the chief.
    In a cluster the chief is the task of type `"chief"` or, when the cluster has no chief
    task, `"worker"` with index 0.

    Args:
      strategy: a `tf.distribute.Strategy`; default `tf.distribute.get_strategy()`.
    """
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return True
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None)
    if task_type in (None, "chief"):
        return True
    if task_type == "worker" and (task_id or 0) == 0:
        try:
            cluster = resolver.cluster_spec().as_dict()
        except Exception:  # pragma: no cover - a resolver without a spec: assume no chief
            cluster = {}
        return "chief" not in cluster
    return False


def _finite(value):
    try:
        return bool(np.all(np.isfinite(np.asarray(value, dtype=np.float64))))
    except (TypeError, ValueError):
        return True  # not a number (e.g. a string): nothing to check


def all_weights_finite(model):
    """True if every weight of `model` (trainable or not) is finite."""
    return all(bool(tf.reduce_all(tf.math.is_finite(tf.cast(w, tf.float32)))) for w in model.weights
               if tf.as_dtype(w.dtype).is_floating)


def _model_strategy(model):
    """The strategy a model was built under (Keras 3 keeps it as `distribute_strategy`)."""
    return getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the message says when and where to resume from."""


def _latest_checkpoint_note(checkpoint_dir):
    if checkpoint_dir is None:
        return "No checkpoint directory was configured, so no checkpoint was written."
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if latest is None:
        return f"No checkpoint was written yet (checkpoint directory {checkpoint_dir})."
    epoch = checkpoint_epoch(latest)
    at = f" (after epoch {epoch})" if epoch is not None else ""
    return f"The last good checkpoint is {latest}{at}; it is intact and training can resume from it."


def checkpoint_epoch(path):
    """The epoch count a `FlowCheckpoint` stored in checkpoint `path`, or None."""
    try:
        return int(tf.train.load_variable(path, "epoch/.ATTRIBUTES/VARIABLE_VALUE"))
    except Exception:  # a checkpoint not written by FlowCheckpoint
        return None


class NaNGuard(keras.callbacks.Callback):
    """Stops training when it cannot go on: raises `NonFiniteLossError`.

    It checks the logs after every batch and stops
    - at a non-finite logged loss (a model compiled with `skip_nonfinite=False`, or a custom
      train step), or
    - after `max_nonfinite_steps` steps in a row that `FlowModel`'s train step skipped as
      non-finite (its running `nonfinite_steps` log); isolated skipped steps only count.
    Raising there aborts `fit` before `on_epoch_end`, so checkpoint callbacks never save
    anything after it, and the latest checkpoint in `checkpoint_dir` stays the last good one;
    the message names it.

    Args:
      checkpoint_dir: the `FlowCheckpoint` directory (or `None`), for the message.
      max_nonfinite_steps: the limit of skipped steps in a row; `None` takes the model's
        (`FlowModel.compile(max_nonfinite_steps=...)`).
    """

    def __init__(self, checkpoint_dir=None, max_nonfinite_steps=None):
        super().__init__()
        self.checkpoint_dir = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
        self.max_nonfinite_steps = max_nonfinite_steps
        self._epoch = 0
        self._seen = None  # the last `nonfinite_steps` total
        self._in_a_row = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _limit(self):
        if self.max_nonfinite_steps is not None:
            return self.max_nonfinite_steps
        return getattr(self.model, "max_nonfinite_steps", None)

    def on_train_batch_end(self, batch, logs=None):
        if not logs:
            return
        if "nonfinite_steps" in logs:
            total = float(np.asarray(logs["nonfinite_steps"]))
            new = total - (self._seen or 0.0)
            self._seen = total
            self._in_a_row = self._in_a_row + int(round(new)) if new > 0.5 else 0
            limit = self._limit()
            if limit is not None and self._in_a_row >= limit:
                raise NonFiniteLossError(
                    f"Training stopped: {self._in_a_row} steps in a row had a non-finite loss or "
                    f"gradient (epoch {self._epoch + 1}, step {batch + 1}); each was skipped, so the "
                    f"weights are still finite, but training cannot make progress. A lower learning "
                    f"rate, a longer warmup or a smaller clip norm usually helps. "
                    + _latest_checkpoint_note(self.checkpoint_dir))
        if "loss" not in logs:
            return
        loss = float(np.asarray(logs["loss"]))
        if math.isfinite(loss):
            return
        raise NonFiniteLossError(
            f"Training stopped: the loss became {loss} at epoch {self._epoch + 1}, step {batch + 1} "
            f"(the logged loss is the epoch's running mean, so this step or an earlier one of the "
            f"epoch diverged; a lower learning rate usually helps). "
            f"No checkpoint of the non-finite weights was written. "
            + _latest_checkpoint_note(self.checkpoint_dir))


class FlowCheckpoint(keras.callbacks.Callback):
    """Saves model, optimizer and epoch after every good epoch; restores them to resume.

    A checkpoint is `tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=...)`
    managed by a `tf.train.CheckpointManager` (`directory/ckpt-E`, `E` = epochs completed). The
    model's variables are those of its flow (ActNorm's `initialized` flag included); the
    optimizer's are its iteration count, learning rate and slots.

    An epoch is saved only if every value in its logs is finite and every model weight is
    finite; otherwise it is skipped with a warning and the previous checkpoint stays the latest.

    On a non-chief worker (multi-worker training) the checkpoint is written to a temporary
    directory that is deleted at once, so every worker runs the same save code and nothing of
    theirs is kept.

    Args:
      directory: checkpoint directory.
      max_to_keep: checkpoints kept by the manager.
    """

    def __init__(self, directory, max_to_keep=3):
        super().__init__()
        self.directory = os.fspath(directory)
        self.max_to_keep = int(max_to_keep)
        self._ckpt = None
        self._manager = None
        self._owner = None
        self.skipped_epochs = []

    # ------------------------------------------------------------ plumbing
    def _checkpoint(self, model):
        if self._owner is not model:
            self._epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            kwargs = {"model": model, "epoch": self._epoch_var}
            if getattr(model, "optimizer", None) is not None:
                kwargs["optimizer"] = model.optimizer
            self._ckpt = tf.train.Checkpoint(**kwargs)
            self._manager = tf.train.CheckpointManager(self._ckpt, self.directory, max_to_keep=self.max_to_keep,
                                                       checkpoint_name="ckpt")
            self._owner = model
        return self._ckpt, self._manager

    @property
    def latest(self):
        """Path of the latest checkpoint in `directory`, or `None`."""
        return tf.train.latest_checkpoint(self.directory)

    # ------------------------------------------------------------- restore
    def restore(self, model, path=None):
        """Restores the latest (or the given) checkpoint into `model` and its optimizer.

        Call it after `model.compile(...)` and before `fit`. Keras 3 creates optimizer variables
        lazily, so the optimizer is built on `model.trainable_variables` first, and its slots
        are restored too. Restoring ActNorm's `initialized` flag means `fit` will not
        re-initialise it.

        Args:
          model: a `FlowModel` built from the same config as the saved one.
          path: a checkpoint path (default: the latest in `directory`).

        Returns:
          The number of epochs the checkpoint had completed (pass it as `initial_epoch` to
          `fit`), or 0 if there is no checkpoint.

        Raises:
          ValueError: the checkpoint does not fit the model (different flow or shapes).
        """
        path = path or self.latest
        if path is None:
            return 0
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and not optimizer.built:
            optimizer.build(model.trainable_variables)
        ckpt, _ = self._checkpoint(model)
        try:
            status = ckpt.restore(path)
            status.assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
            raise ValueError(f"Checkpoint {path} does not fit this model ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}).") from e
        status.expect_partial()
        return int(self._epoch_var.numpy())

    # ---------------------------------------------------------------- save
    def on_epoch_end(self, epoch, logs=None):
        bad = {k: v for k, v in (logs or {}).items() if not _finite(v)}
        if bad or not all_weights_finite(self.model):
            what = f"non-finite logs {bad}" if bad else "non-finite model weights"
            self.skipped_epochs.append(epoch + 1)
            print(f"FlowCheckpoint: not saving epoch {epoch + 1}: {what}; the latest checkpoint "
                  f"stays {self.latest}.", flush=True)
            return
        ckpt, manager = self._checkpoint(self.model)
        self._epoch_var.assign(epoch + 1)
        if is_chief(_model_strategy(self.model)):
            manager.save(checkpoint_number=epoch + 1)
        else:
            tmp = tempfile.mkdtemp(prefix="flow_ckpt_worker_")
            try:
                ckpt.write(os.path.join(tmp, "ckpt"))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)


class SampleGrid(keras.callbacks.Callback):
    """Writes `directory/samples_epoch{E:03d}.png` every `every` epochs (E is 1-based).

    Image models: a grid of `n` samples at `temperature` (`plots.save_image_grid` of
    `model.sample_images`), captioned (drawn into the picture and as its PNG `Title`)
    `plots.sample_title(temperature, epoch=E, seed=seed)`.
    2-D vector models: the density figure of `plots.plot_density_2d` on `data` (required for
    them; its samples panel names the temperature). Other vector models: nothing. With
    `log_dir`, each written picture also goes to TensorBoard: `tf.summary.image` at step `E`
    in the run `log_dir/samples`, tag `samples/T=<temperature>`, the title as its description.
    Non-chief workers write nothing.

    Args:
      directory: output directory.
      n: number of samples.
      temperature: sampling temperature.
      seed: sampling seed (the same every epoch, so the grids show one latent evolving).
      every: write every `every` epochs (and after the last one of `fit`).
      data: `[N, 2]` points for the 2-D density figure.
      log_dir: TensorBoard log directory (e.g. Keras' `TensorBoard` callback's), or `None`.
    """

    def __init__(self, directory, n=64, temperature=0.7, seed=0, every=1, data=None, log_dir=None):
        super().__init__()
        self.directory = os.fspath(directory)
        self.n, self.temperature, self.seed = int(n), float(temperature), seed
        self.every = max(1, int(every))
        self.data = data
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.written = []
        self._epochs = None
        self._writer = None

    @property
    def tag(self):
        """The TensorBoard tag of the grids: `samples/T=0.7`."""
        return f"samples/T={self.temperature:g}"

    def on_train_begin(self, logs=None):
        self._epochs = self.params.get("epochs") if self.params else None

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def path(self, epoch):
        return os.path.join(self.directory, f"samples_epoch{epoch:03d}.png")

    def on_epoch_end(self, epoch, logs=None):
        e = epoch + 1
        if e % self.every and e != self._epochs:
            return
        if not is_chief(_model_strategy(self.model)):
            return
        model = self.model
        path = self.path(e)
        title = plots.sample_title(self.temperature, epoch=e, seed=self.seed)
        if getattr(model, "is_image", False):
            plots.save_image_grid(path, model.sample_images(self.n, self.temperature, seed=self.seed), title=title)
        elif tuple(getattr(model, "event_shape", ())) == (2,) and self.data is not None:
            plots.plot_density_2d(model, self.data, path, temperature=self.temperature, seed=self.seed,
                                  title=f"epoch {e}")
        else:
            return
        self.written.append(path)
        if self.log_dir is not None:
            self._log_image(path, e, title)

    def _log_image(self, path, step, title):
        """The PNG just written, as a TensorBoard image (the picture itself, not a re-rendering)."""
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "samples"))
        image = tf.io.decode_png(tf.io.read_file(path), channels=0)
        with self._writer.as_default():
            tf.summary.image(self.tag, image[None], step=step, description=title)
        self._writer.flush()

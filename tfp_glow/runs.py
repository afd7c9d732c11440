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
"""
import csv
import errno
import io
import json
import os
import shutil
import socket
import time
import warnings

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: RunLock is a no-op
    fcntl = None

import keras
import tensorflow as tf

from tfp_glow import averaging, precision
from tfp_glow.callbacks import checkpoint_epoch
from tfp_glow.conditional import make_flow_model
from tfp_glow.models import WEIGHTS_FORMAT_VERSION, FlowConfig, OldWeightsWarning, old_weights_message
from tfp_glow.training import FlowModel

__all__ = ["RunError", "CONFIG", "CHECKPOINTS", "WEIGHTS", "METRICS", "LOGS", "SAMPLES_FINAL",
           "CURVES", "DENSITY", "RUN_ARTIFACTS", "EVAL_BATCH_SIZE", "run_paths", "save_run_config",
           "load_run_config", "build_model", "load_run", "is_run_dir", "remove_run_files",
           "RunLock", "atomic_write", "checkpoint_candidates", "verify_checkpoint", "find_intact_checkpoint",
           "checkpoint_epoch", "restore_newest_intact", "reconcile_metrics", "read_metrics_rows",
           "append_metrics_row", "EpochRecord", "LOCK", "CorruptCheckpointWarning", "NothingToLoadError",
           "leftover_files", "update_run_config", "save_weights_atomically",
           "remove_partial_writes"]

CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
WEIGHTS = "model.weights.h5"
METRICS = "metrics.csv"
LOGS = "logs"
SAMPLES_FINAL = "samples_final.png"
CURVES = "curves.png"
DENSITY = "density.png"
LOCK = ".lock"
#: Every file/folder a run writes (besides samples_epochNNN.png); what a fresh run replaces.
RUN_ARTIFACTS = (CONFIG, CHECKPOINTS, WEIGHTS, METRICS, LOGS, SAMPLES_FINAL, CURVES, DENSITY)
#: Evaluation batch size of train's final evaluation and of `evaluate` (stored in config.json).
EVAL_BATCH_SIZE = 256
#: What a run's stored weights mean (config.json's `format_version`): the weight files' version.
FORMAT_VERSION = WEIGHTS_FORMAT_VERSION


class RunError(ValueError):
    """A run directory is missing, incomplete or does not match its config."""


class NothingToLoadError(RunError):
    """A run directory holds no intact checkpoint and no model.weights.h5."""


def leftover_files(run_dir):
    """Names of files in `run_dir` a new run would write over (its own kinds of files), when
    the folder holds no run (no config.json) that --overwrite could replace knowingly."""
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        return []
    names = [n for n in (WEIGHTS, METRICS, SAMPLES_FINAL, CURVES, DENSITY) if os.path.exists(os.path.join(run_dir, n))]
    names += [n for n in sorted(os.listdir(run_dir)) if n.startswith("samples_epoch") and n.endswith(".png")]
    if checkpoint_candidates(os.path.join(run_dir, CHECKPOINTS)):
        names.append(CHECKPOINTS + "/")
    return names


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
        if name in own or (name.startswith("samples_epoch") and name.endswith(".png")) or _partial_write(name):
            path = os.path.join(run_dir, name)
            if os.path.isfile(path):
                os.remove(path)
                removed.append(path)
    # (a killed checkpoint write leaves ckpt-N_temp/part-* files)
    for sub, ours in ((CHECKPOINTS, lambda r, f: f == "checkpoint" or f.startswith(("ckpt-", "checkpoint.tmp"))
                       or (f.startswith("part-") and os.path.basename(r).startswith("ckpt-"))),
                      (LOGS, lambda r, f: f.startswith("events.out.tfevents"))):
        top = os.path.join(run_dir, sub)
        if not os.path.isdir(top):
            continue
        for root, dirs, files in os.walk(top, topdown=False):
            for f in files:
                if ours(root, f):
                    os.remove(os.path.join(root, f))
                    removed.append(os.path.join(root, f))
            if not os.listdir(root):
                os.rmdir(root)
    return removed


def _partial_write(name):
    """Whether `name` (in the run's top folder) is a temp file of a write that was killed."""
    return (any(name.startswith(f"{own}.tmp") for own in (CONFIG, METRICS))
            or (name.startswith("model.tmp") and name.endswith(".weights.h5")))


def remove_partial_writes(run_dir):
    """Removes what killed writes left: `checkpoints/ckpt-N_temp/` (TensorFlow writes there,
    then moves the finished files into place) and the temp files of `atomic_write` and
    `save_weights_atomically`. Only the run's writer, holding its `RunLock`, may call it.
    Returns the removed paths."""
    run_dir = os.fspath(run_dir)
    removed = []
    ckpts = os.path.join(run_dir, CHECKPOINTS)
    if os.path.isdir(ckpts):
        for name in sorted(os.listdir(ckpts)):
            path = os.path.join(ckpts, name)
            if name.startswith("ckpt-") and name.endswith("_temp") and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            elif name.startswith("checkpoint.tmp") and os.path.isfile(path):
                os.remove(path)
                removed.append(path)
    if os.path.isdir(run_dir):
        for name in sorted(os.listdir(run_dir)):
            path = os.path.join(run_dir, name)
            if _partial_write(name) and os.path.isfile(path):
                os.remove(path)
                removed.append(path)
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
        "dequantization": model.dequantization,
        "eval_batch_size": EVAL_BATCH_SIZE,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    config.update(extra or {})
    text = json.dumps(config, indent=2, sort_keys=True, default=_json_default) + "\n"
    atomic_write(os.path.join(run_dir, CONFIG), text)
    return config


def atomic_write(path, text):
    """Writes `text` to `path` so that `path` holds either its old or its new content, never a
    part: a temp file in the same folder, flushed and fsynced, then `os.replace`. A failed
    write (full disk, read-only folder) leaves the old file and no temp file; the `OSError`
    propagates."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def update_run_config(run_dir, **entries):
    """Sets `entries` in an existing config.json (atomically); returns the new dict."""
    config = load_run_config(run_dir)
    config.update(entries)
    text = json.dumps(config, indent=2, sort_keys=True, default=_json_default) + "\n"
    atomic_write(os.path.join(os.fspath(run_dir), CONFIG), text)
    return config


def save_weights_atomically(model, path):
    """`model.save_weights(path)` through a temp file and `os.replace`: a kill never leaves a
    half-written `path` (the previous file stays until the new one is complete)."""
    path = os.fspath(path)
    tmp = path[:-len(".weights.h5")] + f".tmp{os.getpid()}.weights.h5"
    try:
        model.save_weights(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


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
                                    dequantization=config.get("dequantization", "uniform"))
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


# ------------------------------------------------------------------------------- recovery
class CorruptCheckpointWarning(UserWarning):
    """A checkpoint could not be read in full; it was renamed `*.corrupt` and skipped."""


def _ckpt_number(name):
    """`N` of `ckpt-N.index`, else None."""
    if not (name.startswith("ckpt-") and name.endswith(".index")):
        return None
    number = name[len("ckpt-"):-len(".index")]
    return int(number) if number.isdigit() else None


def checkpoint_candidates(checkpoint_dir):
    """Paths (`DIR/ckpt-N`) of the checkpoints in `checkpoint_dir`, newest (largest N) first.

    Read from the files on disk, not from the `checkpoint` state file, so that a state file
    naming a missing or corrupt checkpoint hides none of the others.
    """
    checkpoint_dir = os.fspath(checkpoint_dir)
    if not os.path.isdir(checkpoint_dir):
        return []
    numbers = sorted((n for n in map(_ckpt_number, os.listdir(checkpoint_dir)) if n is not None), reverse=True)
    return [os.path.join(checkpoint_dir, f"ckpt-{n}") for n in numbers]


def verify_checkpoint(path):
    """None if the checkpoint `path` reads in full, else a one-line reason.

    Every tensor is read, so a truncated data file or a flipped bit (each tensor carries a
    CRC32C in the index) is found here, before anything is restored into a model.
    """
    try:
        reader = tf.train.load_checkpoint(path)
        names = reader.get_variable_to_shape_map()
        if not names:
            return "it holds no variables"
        for name in names:
            reader.get_tensor(name)
    except Exception as e:  # IndexError, DataLossError, OutOfRangeError, NotFoundError, ValueError...
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return f"{type(e).__name__}: {first}"[:300]
    return None


def _quarantine(path):
    """Renames every file of checkpoint `path` (`ckpt-N.index`, `ckpt-N.data-*`) to `*.corrupt`."""
    folder, base = os.path.split(path)
    renamed = []
    for name in sorted(os.listdir(folder)):
        if name.startswith(base + ".") and not name.endswith(".corrupt"):
            src = os.path.join(folder, name)
            os.replace(src, src + ".corrupt")
            renamed.append(src + ".corrupt")
    return renamed


def find_intact_checkpoint(checkpoint_dir, report=None, quarantine=True):
    """The newest checkpoint in `checkpoint_dir` that reads in full, or None.

    Each corrupt one on the way is renamed `*.corrupt` and reported, and the `checkpoint`
    state file is rewritten to name the intact ones, so `tf.train.latest_checkpoint` and a
    `tf.train.CheckpointManager` agree with what was found.

    Args:
      checkpoint_dir: a `FlowCheckpoint` directory.
      report: `callable(str)` for the messages (default: `CorruptCheckpointWarning`).
      quarantine: rename corrupt checkpoints (else only skip them: for a reader while the
        run's writer may be saving).
    """
    report = report or (lambda m: warnings.warn(m, CorruptCheckpointWarning, stacklevel=3))
    candidates = checkpoint_candidates(checkpoint_dir)
    corrupt = False
    found = None
    for i, path in enumerate(candidates):
        reason = verify_checkpoint(path)
        if reason is None:
            found = path
            break
        if not quarantine:
            report(f"note: checkpoint {path} is unreadable ({reason}); skipped; trying an older one")
            continue
        corrupt = True
        try:
            _quarantine(path)
            where = f"renamed to {os.path.basename(path)}.*.corrupt"
        except OSError as e:
            where = f"could not be renamed ({e.strerror})"
        report(f"note: checkpoint {path} is corrupt ({reason}); {where}; trying an older one")
    if corrupt:
        intact = [p for p in candidates if os.path.exists(p + ".index")]
        try:
            if found is not None:  # the state file's text format (CheckpointState), oldest first
                names = [os.path.basename(p) for p in intact[::-1]]
                atomic_write(os.path.join(checkpoint_dir, "checkpoint"),
                             f'model_checkpoint_path: "{os.path.basename(found)}"\n'
                             + "".join(f'all_model_checkpoint_paths: "{n}"\n' for n in names))
            elif os.path.exists(os.path.join(checkpoint_dir, "checkpoint")):
                os.remove(os.path.join(checkpoint_dir, "checkpoint"))
        except (OSError, tf.errors.OpError):
            pass  # the state file only helps tf.train.latest_checkpoint; the files are what counts
    return found


def restore_newest_intact(run_dir, model, restore=None, report=None, allow_weights=True, quarantine=None):
    """Restores the newest intact state of a run into `model`; returns `(path, epoch)`.

    Tries the checkpoints newest first (`find_intact_checkpoint`), then `model.weights.h5`.

    Args:
      run_dir: the run directory.
      model: a built `FlowModel` of the run's config.
      restore: `callable(path) -> epoch` that restores a checkpoint (e.g.
        `FlowCheckpoint.restore` with the optimizer); default: the model only.
      report: `callable(str)` told what was corrupt and what was loaded (default: warnings
        for corrupt files, nothing else).
      allow_weights: fall back to `model.weights.h5` (its epoch is config.json's
        `weights_epoch`, or None).
      quarantine: rename corrupt checkpoints `*.corrupt`; default: unless another process
        holds the run's `RunLock` (a checkpoint it is writing may look unreadable). The
        writer itself passes True.

    Raises:
      RunError: nothing intact to load, or a file that does not fit the model.
    """
    run_dir = os.fspath(run_dir)
    paths = run_paths(run_dir)
    # a checkpoint being written looks unreadable: only rename when no writer holds the run
    if quarantine is None:
        quarantine = not RunLock.busy(run_dir)
    latest = find_intact_checkpoint(paths["checkpoints"], report=report, quarantine=quarantine)
    if latest is not None:
        try:
            if restore is not None:
                epoch = restore(latest)
            else:
                status = tf.train.Checkpoint(model=model).restore(latest)
                status.expect_partial()
                status.assert_existing_objects_matched()
                epoch = checkpoint_epoch(latest)
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            raise RunError(f"checkpoint {latest!r} does not fit the model described by {paths['config']!r}: "
                           f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
        if report:
            report(f"loaded {latest}" + (f" (epoch {epoch})" if epoch is not None else ""))
        return latest, epoch
    if allow_weights and os.path.isfile(paths["weights"]):
        try:
            model.load_weights(paths["weights"])
        except (ValueError, KeyError, OSError) as e:
            raise RunError(f"weights {paths['weights']!r} do not fit the model described by "
                           f"{paths['config']!r}, or are unreadable: {type(e).__name__}: {e}") from e
        epoch = None
        try:
            epoch = load_run_config(run_dir).get("weights_epoch")
        except RunError:
            pass
        if report:
            report(f"loaded {paths['weights']}" + (f" (epoch {epoch})" if epoch is not None else ""))
        return paths["weights"], epoch
    raise NothingToLoadError(f"{run_dir!r} has no intact trained weights: no readable checkpoint in "
                   f"{paths['checkpoints']!r} and no {paths['weights']!r}.")


# ---------------------------------------------------------------------------------- lock
class RunLock:
    """An exclusive lock on a run directory: one writer at a time.

    `fcntl.flock` on `RUN_DIR/.lock`, which records the holder's pid, host and start time for
    the message a second writer gets. The kernel releases the lock when the holder's process
    ends in any way (kill -9 included), so a stale `.lock` file never blocks. Without `fcntl`
    (Windows) the lock is a no-op.

    Raises (`acquire`):
      RunError: another process holds the lock, or the folder cannot be written.
    """

    def __init__(self, run_dir):
        self.run_dir = os.fspath(run_dir)
        self.path = os.path.join(self.run_dir, LOCK)
        self._fd = None

    def acquire(self):
        if fcntl is None:  # pragma: no cover - not POSIX
            return self
        for _ in range(10):  # retried only if the holder deleted the file as we locked it
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = ""
                try:
                    holder = os.pread(fd, 256, 0).decode(errors="replace").strip()
                except OSError:
                    pass
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    who = f" ({holder})" if holder else ""
                    raise RunError(f"the run directory {self.run_dir!r} is in use by another tfp-glow train{who}; "
                                   f"wait for it to finish, or choose another --run-dir.") from e
                raise RunError(f"cannot lock the run directory {self.run_dir!r}: {e.strerror or e}") from e
            if self._same_file(fd):
                break
            os.close(fd)
        else:  # pragma: no cover - ten holders in a row deleted the file under us
            raise RunError(f"cannot lock the run directory {self.run_dir!r}: its {LOCK} keeps changing.")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}, "
                          f"since {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode(), 0)
        except OSError:
            pass  # the lock holds; only the holder's description is missing
        self._fd = fd
        return self

    def _open(self):
        try:
            os.makedirs(self.run_dir, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RunError(f"cannot write to the run directory {self.run_dir!r}: {e.strerror or e}") from e

    def _same_file(self, fd):
        """Whether `.lock` is still the file we locked (a releasing holder deletes it)."""
        try:
            a, b = os.fstat(fd), os.stat(self.path)
        except OSError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def release(self):
        """Deletes `.lock` and unlocks (in this order, so a waiting writer never locks a
        deleted file without noticing: it checks the path still names what it locked)."""
        if self._fd is not None:
            try:
                try:
                    os.remove(self.path)
                except OSError:
                    pass
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    @staticmethod
    def busy(run_dir):
        """Whether another process holds the lock of `run_dir` now (a `tfp-glow train` writing it)."""
        path = os.path.join(os.fspath(run_dir), LOCK)
        if fcntl is None or not os.path.exists(path):
            return False
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # (closing drops the probe's lock)
        return False

    @property
    def held(self):
        return self._fd is not None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


# ------------------------------------------------------------------------------- metrics
def read_metrics_rows(path):
    """`(fieldnames, rows)` of a metrics.csv (Keras CSVLogger format; `epoch` 0-based)."""
    if not os.path.isfile(path):
        return [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if r.get("epoch") not in (None, "")]
        return list(reader.fieldnames or []), rows


def _row_epoch(row):
    try:
        return int(float(row["epoch"]))
    except (KeyError, TypeError, ValueError):
        return None


def _write_metrics(path, fieldnames, rows):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames, restval="NA", extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buf.getvalue())


def append_metrics_row(path, epoch, logs):
    """Writes the row of 0-based `epoch` into metrics.csv atomically (the whole file is replaced).

    Rows of `epoch` and later (left by a run that died before its checkpoint) are replaced,
    so every epoch has one row. The columns are `epoch` and the sorted log keys, as Keras'
    `CSVLogger` writes them.
    """
    fieldnames, rows = read_metrics_rows(path)
    keys = sorted(logs or {})
    if not fieldnames:
        fieldnames = ["epoch"] + keys
    else:
        fieldnames = fieldnames + [k for k in keys if k not in fieldnames]
    rows = [r for r in rows if (_row_epoch(r) is not None and _row_epoch(r) < epoch)]
    row = {"epoch": epoch}
    for k, v in (logs or {}).items():
        try:
            row[k] = repr(float(v))
        except (TypeError, ValueError):
            row[k] = str(v)
    rows.append(row)
    _write_metrics(path, fieldnames, rows)


def reconcile_metrics(path, epochs_done):
    """Keeps the metrics rows of the `epochs_done` epochs a restored checkpoint completed.

    A run killed after its metrics row but before its checkpoint (or restored from an older
    checkpoint than its newest) has rows past the checkpoint; they are dropped (atomically)
    so that the resumed run writes each epoch's row once, with no gap. Returns the number of
    rows dropped.
    """
    fieldnames, rows = read_metrics_rows(path)
    keep = [r for r in rows if _row_epoch(r) is not None and _row_epoch(r) < epochs_done]
    if len(keep) != len(rows):
        _write_metrics(path, fieldnames, keep)
    return len(rows) - len(keep)


# --------------------------------------------------------------------------- epoch record
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

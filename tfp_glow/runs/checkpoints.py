"""Checkpoint verification and recovery: each checkpoint is read in full before it is restored
(`verify_checkpoint`), a corrupt one is renamed `*.corrupt` and the next newest is tried
(`find_intact_checkpoint`), and `restore_newest_intact` loads the newest intact state of a run
(a checkpoint, else `model.weights.h5`).
"""
import os
import warnings

import tensorflow as tf

from tfp_glow.training.callbacks import checkpoint_epoch
from tfp_glow.runs.config import load_run_config
from tfp_glow.runs.layout import RunError, atomic_write, checkpoint_candidates, run_paths
from tfp_glow.runs.lock import RunLock


class CorruptCheckpointWarning(UserWarning):
    """A checkpoint could not be read in full; it was renamed `*.corrupt` and skipped."""


class NothingToLoadError(RunError):
    """A run directory holds no intact checkpoint and no model.weights.h5."""


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

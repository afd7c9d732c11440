"""The files of a run directory: their names, `run_paths`, `RunError`, the atomic writes and
the clean-up.

The names (`CONFIG`, `CHECKPOINTS`, `WEIGHTS`, `METRICS`, `LOGS`, `SAMPLES_FINAL`, `CURVES`,
`DENSITY`, `LOCK`, `RUN_ARTIFACTS`), where they sit (`run_paths`, `is_run_dir`), the checkpoint
files on disk (`checkpoint_candidates`), the writes that never leave a part (`atomic_write`,
`save_weights_atomically`), and what a new run replaces or a killed one left
(`leftover_files`, `remove_run_files`, `remove_partial_writes`).
"""
import os
import shutil


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


class RunError(ValueError):
    """A run directory is missing, incomplete or does not match its config."""


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

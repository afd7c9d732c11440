"""`tfp-glow train --resume`: the run's config.json fixes the options, and the newest intact
checkpoint (or its weights file) restores the model, the optimizer and the epoch."""
import os

import numpy as np

from tfp_glow import recipes, runs
from tfp_glow.data import splits
from tfp_glow.cli.options import CLIError, say

__all__ = ["resumes_conditional_run", "stored_config", "resumed_data", "restore"]


def resumes_conditional_run(args):
    """Whether `--resume` (without `--conditional`) continues a class-conditional run: the run
    decides, as it does for its data and flow."""
    if not args.resume or getattr(args, "conditional", False):
        return False
    try:
        stored = stored_config(args)
    except (CLIError, ValueError, FileNotFoundError, RuntimeError) as e:
        raise CLIError(str(e)) from e
    if not stored["flow_config"].get("kwargs", {}).get("num_classes"):
        return False
    say(f"note: {args.run_dir} is a class-conditional run; resuming it as with --conditional")
    args.conditional = True
    return True


def stored_config(args):
    """The config.json of the run `--resume` continues; fills in the options it fixes."""
    if args.run_dir is None:
        data_guess = args.data or "digits"
        flow_guess = args.flow or recipes.default_flow(splits.data_kind(data_guess))
        args.run_dir = recipes.default_run_dir(flow_guess, data_guess, args.dequantization,
                                               conditional=getattr(args, "conditional", False))
    stored = runs.load_run_config(args.run_dir)
    stored_flow = stored["flow_config"]["flow"]
    if args.flow is not None and args.flow != stored_flow:
        raise CLIError(f"--resume: the run in {args.run_dir!r} trains {stored_flow}, not {args.flow}.")
    args.flow = stored_flow
    args.data = resumed_data(args, stored)
    _keep_the_runs(args, "n_bits", stored["n_bits"])  # the run's bit depth, never the data kind's default
    _keep_the_runs(args, "dequantization", stored.get("dequantization", "uniform"))
    # runs from before these options had none: 0
    for key in ("noise_sigma", "label_dropout"):
        _keep_the_runs(args, key, float(stored.get(key, 0.0) or 0.0), same=lambda given, run: float(given) == run)
    # its averages are in the run's checkpoints
    _keep_the_runs(args, "ema", stored.get("ema_decay") or None, same=lambda given, run: (given or None) == run)
    for key in ("val_fraction", "test_fraction"):
        setattr(args, key, stored.get(key, getattr(args, key)))
    # An image folder is read as the run first read it (size and colour are its identity).
    for key in ("image_size", "grayscale"):
        if stored.get(key) and getattr(args, key) and tuple(np.atleast_1d(stored[key])) != tuple(
                np.atleast_1d(getattr(args, key))):
            raise CLIError(f"--resume: the run in {args.run_dir!r} reads its images with "
                           f"--{key.replace('_', '-')} {stored[key]}.")
        if stored.get(key):
            setattr(args, key, stored[key])
    return stored


def _keep_the_runs(args, key, run_value, same=lambda given, run: given == run):
    """Sets `args.<key>` to the run's value; a given value that differs (`same`) is a `CLIError`."""
    given = getattr(args, key)
    if given is not None and not same(given, run_value):
        shown = "none" if run_value is None else (f"{run_value:g}" if isinstance(run_value, float) else run_value)
        raise CLIError(f"--resume: the run in {args.run_dir!r} uses --{key.replace('_', '-')} {shown}.")
    setattr(args, key, run_value)


def resumed_data(args, stored):
    """The data `--resume` trains on: the run's, found from any folder (`runs.locate_data`), or
    `--data` where the run's own data moved (a file or folder no longer at its recorded places;
    `train` checks its shape and bit depth against the run's). Other data is a `CLIError`."""
    try:
        found = runs.locate_data(stored, args.run_dir)
    except runs.DataNotFoundError as e:
        if args.data is None:
            raise CLIError(f"--resume: {e}") from e
        say(f"note: --resume: the run's data {stored['data']!r} moved; reading it from {args.data!r}")
        return args.data
    if args.data is not None and not same_data(args.data, found):
        raise CLIError(f"--resume: the run in {args.run_dir!r} trains on {stored['data']!r}, not {args.data!r}; "
                       f"a resumed run keeps its data (drop --data; --data points it at its data only once that "
                       f"moved), or start a new run in another --run-dir.")
    return found


def same_data(given, stored):
    """Whether `--data given` names the run's data `stored` (the same path, however spelled)."""
    if given == stored:
        return True
    if os.path.exists(given) and os.path.exists(stored):
        return os.path.realpath(given) == os.path.realpath(stored)
    return False


def restore(job):
    """--resume: the newest intact checkpoint (model, optimizer, epoch), else model.weights.h5;
    metrics.csv cut back to the restored epoch; the learning rate the run's config names."""
    try:
        path, epoch = runs.restore_newest_intact(job.run_dir, job.model,
                                                 restore=lambda p: job.ckpt.restore(job.model, p), report=say,
                                                 quarantine=job.chief)  # the chief holds the RunLock
    except runs.NothingToLoadError:
        path, epoch = None, 0
        say(f"note: {job.paths['checkpoints']} has no intact checkpoint; training {job.run_dir} from the start")
    if path is not None and epoch is None:  # model.weights.h5 of an older run: written after its last epoch
        epoch = job.stored.get("weights_epoch") or job.stored.get("epochs_done") or job.stored.get("epochs") or 0
        say(f"note: resuming from {path} as epoch {epoch}, with a fresh optimizer state")
    job.initial_epoch = int(epoch)
    # The optimizer uses exactly the learning rate this run prints and records, the one it was
    # compiled with (the checkpoint holds the one of its last epoch).
    job.model.reset_learning_rate()
    if job.chief:
        runs.remove_partial_writes(job.run_dir)
        dropped = runs.reconcile_metrics(job.paths["metrics"], job.initial_epoch)
        if dropped:
            say(f"note: dropped {dropped} row(s) of {job.paths['metrics']} past epoch {job.initial_epoch}, "
                f"the restored one; those epochs are trained again")

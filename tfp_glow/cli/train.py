"""`tfp-glow train` (and `--conditional`): reads the options, lets the library decide, trains, and reports.

The decisions are the library's: the held-out splits (`splits.load_split`), the defaults per
data kind with the explicit options over them (`recipes.recipe_for`), the run directory's
default name (`recipes.default_run_dir`) and the compiled model (`recipes.build_model`). This
module reconciles `--resume` with the run's config.json, writes the run directory, and prints.
What a class-conditional run (`--conditional`) does differently, from loading labelled splits
to its sample grid, is a set of hooks (`cli/train_data.py`).

Input errors raise `CLIError` (exit 2) before any training step; a non-finite loss that stops
training exits with code 1, naming the last good checkpoint.
"""
import dataclasses
import importlib.util
import os
import sys
import time
from typing import Any, Optional

import keras
import numpy as np

from tfp_glow.training import callbacks as cb
from tfp_glow import data as data_lib
from tfp_glow import extras, plots, recipes, runs
from tfp_glow.training import distribute
from tfp_glow.training.progress import EpochLine
from tfp_glow.training.time_limit import TimeLimit
from tfp_glow.numerics import precision
from tfp_glow.data import splits
from tfp_glow.cli import train_data, train_resume
from tfp_glow.cli.train_resume import resumes_conditional_run
from tfp_glow.cli.options import CLIError, say
from tfp_glow.models import FlowConfig, count_parameters

__all__ = ["run"]


@dataclasses.dataclass
class _Job:
    """What preparation decided and built: everything training and the report need."""

    data_name: str
    info: Any  # tfp_glow.data.DataInfo
    parts: dict  # split -> numpy array or tf.data.Dataset
    recipe: recipes.Recipe
    run_dir: str
    paths: dict
    strategy: Any
    chief: bool
    hooks: Any = None  # train_data.Unlabelled or Labelled
    labels: Optional[dict] = None  # split -> int labels [N] (or None) of a conditional run
    model: Any = None  # tfp_glow.training.FlowModel
    ckpt: Optional[cb.FlowCheckpoint] = None
    initial_epoch: int = 0
    train_ds: Any = None
    val_ds: Any = None
    stored: Optional[dict] = None  # the resumed run's config.json
    lock: Any = None  # runs.RunLock held while training writes the run directory
    write_config: Any = None  # callable(epochs_done) writing config.json
    precision_from: Optional[str] = None  # how --mixed-precision was decided: "auto", "the run's", or None

    @property
    def image(self):
        return self.info.kind == "image"


def run(args):
    """`tfp-glow train` with parsed `args` (`--conditional` included); returns the test bits/dim."""
    t_start = time.time()
    previous_policy = keras.mixed_precision.global_policy()
    job = None
    try:
        try:  # preparation: any error here is the user's input (exit 2), before any step
            job = _plan(args)
            _build(args, job)
        except (CLIError, ValueError, FileNotFoundError, RuntimeError) as e:
            raise CLIError(str(e)) from e
        _fit(args, job)
        return _finish(args, job, t_start)
    except KeyboardInterrupt:
        if job is None or job.ckpt is None:
            raise
        raise KeyboardInterrupt(_interrupted_message(job)) from None
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        if job is not None and job.lock is not None:
            job.lock.release()


# ------------------------------------------------------------------------------ preparation
def _plan(args):
    """The data, the recipe and the run directory, from the options (and a resumed run)."""
    resumes_conditional_run(args)  # a resumed run decides, as it does for its data and flow
    if args.time_limit and args.strategy == "multiworker":  # each worker's clock would decide alone
        raise CLIError("--time-limit does not apply to --strategy multiworker: the workers would stop "
                       "at different epochs.")
    hooks = train_data.for_args(args)
    stored = train_resume.stored_config(args) if args.resume else None
    if stored is not None:
        hooks.check_stored(args, stored)
    strategy = distribute.get_strategy(args.strategy)
    chief = cb.is_chief(strategy)
    data_name = args.data or "digits"
    parts, labels, info, _ = hooks.load(args, data_name)
    flow = args.flow or recipes.default_flow(info.kind)
    recipe = hooks.recipe(_recipe(args, info, data_name, flow, stored), info, data_name, flow)
    run_dir = args.run_dir or hooks.run_dir(flow, data_name, args.dequantization)
    return _Job(data_name, info, parts, recipe, run_dir, runs.run_paths(run_dir), strategy, chief, hooks=hooks,
                labels=labels, stored=stored)


def _recipe(args, info, data_name, flow, stored):
    """The library's recipe with the explicit options over the resumed run's over the defaults."""
    shape = tuple(info.shape)
    try:
        recipe = recipes.recipe_for(info.kind, shape, flow, data_name, n_bits=args.n_bits,
                                    dequantization=args.dequantization, ema_decay=args.ema,
                                    noise_sigma=args.noise_sigma, label_dropout=args.label_dropout,
                                    **{k: getattr(args, k) for k in recipes.MODEL_OPTIONS})
    except recipes.OptionError as e:
        raise CLIError(_option_message(e, data_name, shape)) from e
    if stored is not None:
        stored_cfg = FlowConfig.from_dict(stored["flow_config"])
        given = any(getattr(args, k) is not None for k in recipes.MODEL_OPTIONS)
        if given and FlowConfig(flow, shape, recipe.flow_kwargs).to_dict() != stored_cfg.to_dict():
            raise CLIError(f"--resume: the model options differ from the run's config.json "
                           f"({stored_cfg.to_dict()}); drop them to resume that model.")
        if tuple(stored_cfg.event_shape) != shape:
            raise CLIError(f"--resume: {data_name!r} has shape {list(shape)} but the run was trained "
                           f"on {list(stored_cfg.event_shape)}.")
        try:  # the bit depth too, for data pointed at with --data (runs.data_source)
            runs.check_data_matches(stored, info, data_name)
        except runs.RunError as e:
            raise CLIError(f"--resume: {e}") from e
        recipe = recipe.merged(flow_kwargs=stored_cfg.kwargs, epochs=stored.get("epochs"),
                               batch_size=stored.get("batch_size"), learning_rate=stored.get("lr"),
                               steps_per_epoch=stored.get("steps_per_epoch"),
                               warmup_steps=stored.get("warmup_steps"), clip_norm=stored.get("clip_norm"),
                               lr_schedule=stored.get("lr_schedule"))
    return recipe.merged(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                         steps_per_epoch=args.steps_per_epoch, warmup_steps=args.warmup_steps,
                         clip_norm=args.clip_norm, lr_schedule=args.lr_schedule)


def _schedule_entries(recipe):
    """config.json's record of the learning-rate schedule and the weight average (kept on --resume)."""
    return {"lr_schedule": recipe.lr_schedule, "ema_decay": recipe.ema_decay or None}


def _option_message(e, data_name, shape):
    """`recipes.OptionError` in the words of the command line (its flags, the data's name)."""
    if e.option == "flow":
        return (f"{e.flow} works on images [H, W, C]; {data_name!r} is vector data of shape {list(shape)}. "
                f"Use --flow realnvp or --flow nice.")
    if e.option == "noise_sigma":
        return f"--noise-sigma applies to image data; {data_name!r} is vector data."
    if e.option == "n_bits":
        return f"--n-bits applies to image data; {data_name!r} is vector data."
    if e.option == "dequantization":
        return f"--dequantization variational applies to image data; {data_name!r} is vector data."
    if e.option == "hidden":
        return f"--hidden for {e.flow} on images is one channel count; got {e.value}."
    return f"--{e.option.replace('_', '-')} does not apply to --flow {e.flow} on {e.kind} data."


def _build(args, job):
    """The compiled model, checked against every split; the datasets; the run directory
    (cleaned, or restored from with --resume) and its config.json."""
    if job.chief:
        _check_run_dir(args, job)
    keras.utils.set_random_seed(args.seed)
    apply_precision(args, job)
    job.model, recipe = recipes.build_model(job.data_name, recipe=job.recipe, info=job.info, strategy=job.strategy,
                                            jit_compile=False if args.no_xla else "auto")
    job.hooks.prepare(job.model, job)
    n_train = splits.num_examples(job.parts["train"])
    job.train_ds = data_lib.make_dataset(job.hooks.examples(job, "train"), recipe.batch_size, shuffle=True,
                                         seed=args.seed, drop_remainder=n_train is None or n_train >= recipe.batch_size,
                                         repeat=recipe.steps_per_epoch is not None)
    job.val_ds = data_lib.make_dataset(job.hooks.examples(job, "validation"), runs.EVAL_BATCH_SIZE, shuffle=False)

    if job.chief:
        job.lock = runs.RunLock(job.run_dir).acquire()  # released in run(), or by the kernel if killed
        _check_run_dir(args, job)  # again, now that no other writer can change the folder
        if not args.resume and (runs.is_run_dir(job.run_dir) or runs.leftover_files(job.run_dir)):  # --overwrite
            removed = runs.remove_run_files(job.run_dir)
            say(f"note: --overwrite: removed the previous run's {len(removed)} files in {job.run_dir}; "
                f"other files there were kept")
    job.ckpt = cb.FlowCheckpoint(job.paths["checkpoints"])
    if args.resume:
        train_resume.restore(job)
    if not job.model.is_initialized:
        # The same deterministic global batch on every worker, identical values on every replica.
        with job.strategy.scope():
            distribute.initialize_actnorm_identically(job.model, job.hooks.init_batch(job, args.seed), job.strategy)
    extra = {
        "epochs": recipe.epochs, "batch_size": recipe.batch_size, "lr": recipe.learning_rate, "seed": args.seed,
        "warmup_steps": recipe.warmup_steps, "clip_norm": recipe.clip_norm,
        "steps_per_epoch": recipe.steps_per_epoch, **_schedule_entries(recipe),
        "val_fraction": args.val_fraction, "test_fraction": args.test_fraction,
        "temperature": args.temperature, "strategy": args.strategy,
        "mixed_precision": args.mixed_precision, "xla": bool(job.model.jit_compile),  # both as resolved
        "image_size": list(args.image_size) if args.image_size else None, "grayscale": args.grayscale,
        **{k: v for k, v in runs.data_entries(job.data_name, job.run_dir, job.info).items()
           if k in ("data_shape", "data_bits")},
        **job.hooks.config(job.model, job),
    }
    if job.stored is not None:  # kept from the run: when it was created, what its weights file holds
        extra.update({k: job.stored[k] for k in ("created", "weights_epoch") if k in job.stored})

    def write_config(epochs_done, **more):
        runs.save_run_config(job.run_dir, job.model, job.data_name, {**extra, "epochs_done": epochs_done, **more})

    job.write_config = write_config
    if job.chief and not args.resume:
        # A resumed run records its (possibly changed) options with the first epoch that trains
        # with them (runs.EpochRecord), never before.
        write_config(0)


def apply_precision(args, job):
    """Resolves `--mixed-precision` into `args.mixed_precision` and sets Keras' global policy to
    it (`run` restores the caller's afterwards).

    Given (`auto` resolved by `precision.resolve_policy`: bf16 with native bf16, unless
    `TFP_GLOW_MIXED_PRECISION` says otherwise), it wins; else a resumed run keeps the policy its
    config.json records (a run recorded before the option existed trained in float32: `none`);
    else `auto`. What is printed and recorded is the resolved policy, never `auto`.
    """
    given = args.mixed_precision
    if given is None and job.stored is not None:
        choice, job.precision_from = job.stored.get("mixed_precision") or "none", "the run's"
    else:
        choice = given or "auto"
        job.precision_from = "auto" if choice == "auto" else None
    args.mixed_precision = precision.resolve_policy(choice)
    keras.mixed_precision.set_global_policy(precision.keras_policy_name(args.mixed_precision))


def _check_run_dir(args, job):
    """A new run never writes over another run's files without --overwrite."""
    if args.resume or args.overwrite:
        return
    if runs.is_run_dir(job.run_dir):
        raise CLIError(f"{job.run_dir!r} already holds a run (its config.json). Continue it with --resume, or "
                       f"replace it with --overwrite, which removes only the files a run writes; or choose "
                       f"another --run-dir.")
    leftover = runs.leftover_files(job.run_dir)
    if leftover:
        raise CLIError(f"{job.run_dir!r} holds files a run would write over ({', '.join(leftover)}) but no "
                       f"config.json; remove them, replace them with --overwrite, or choose another --run-dir.")


# --------------------------------------------------------------------------------- training
def _count(n):
    return n if n is not None else "?"


def _q_parameters(model):
    deq = getattr(model, "dequantizer", None)
    return f" (+ {count_parameters(deq):,} in q(u|x))" if deq is not None else ""


def _fit(args, job):
    """Reports the setup, then `fit` with the run's callbacks; a non-finite loss exits with 1."""
    recipe, model, strategy = job.recipe, job.model, job.strategy
    shape_txt = "x".join(str(d) for d in job.info.shape)
    bits_txt = f", {recipe.n_bits} bits" if job.image else ""
    if recipe.dequantization == "variational":
        bits_txt += ", variational dequantization (figures are the bound)"
    n = {split: splits.num_examples(x) for split, x in job.parts.items()}
    say(f"tfp-glow train: {recipe.flow} on {job.data_name} ({shape_txt}{bits_txt}); examples: "
        f"{_count(n['train'])} train / {_count(n['validation'])} validation / {_count(n['test'])} test")
    say(f"model: {recipe.flow} {', '.join(f'{k}={v}' for k, v in recipe.flow_kwargs.items())}; "
        f"{count_parameters(model.distribution):,} parameters{_q_parameters(model)}; epochs {recipe.epochs}, batch {recipe.batch_size}, "
        f"lr {recipe.learning_rate:g} (warmup {recipe.warmup_steps} steps, then {recipe.lr_schedule}), "
        f"clip norm {recipe.clip_norm or 'off'}, ema {recipe.ema_decay or 'off'}, "
        f"xla {'on' if model.jit_compile else 'off'}, strategy {args.strategy} "
        f"({strategy.num_replicas_in_sync} replica(s)), precision {args.mixed_precision}"
        + (f" ({job.precision_from})" if job.precision_from else ""))
    say(f"run dir: {job.run_dir}")
    # metrics row -> checkpoint -> config.json, one atomic file after the other (runs.EpochRecord)
    record = runs.EpochRecord(job.run_dir, job.ckpt, write_config=job.write_config, chief=job.chief)
    callbacks = [cb.NaNGuard(job.paths["checkpoints"]), record]
    if job.chief:
        callbacks += _chief_callbacks(args, job)
    verbose = args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2)
    callbacks.append(EpochLine())  # the short epoch line (training/progress.py)
    limit = TimeLimit(args.time_limit) if args.time_limit else None
    if limit is not None:
        callbacks.append(limit)
    if job.initial_epoch >= recipe.epochs:
        say(f"the run already completed {job.initial_epoch} epoch(s) (--epochs {recipe.epochs}); nothing to train")
        return
    if job.initial_epoch:
        say(f"resuming from epoch {job.initial_epoch} ({job.ckpt.latest})")
    t_fit = time.time()
    try:
        model.fit(job.train_ds, validation_data=job.val_ds, epochs=recipe.epochs, initial_epoch=job.initial_epoch,
                  steps_per_epoch=recipe.steps_per_epoch, callbacks=callbacks, verbose=verbose, shuffle=False)
    except cb.NonFiniteLossError as e:
        if job.ckpt.latest:
            hint = f"Resume with: tfp-glow train --resume --run-dir {job.run_dir} (optionally with a lower --lr)."
        else:
            hint = "Start again with a lower --lr."
        print(f"error: {e} {hint}", file=sys.stderr, flush=True)
        raise SystemExit(1)
    say(f"training took {time.time() - t_fit:.1f} s")
    if limit is not None and limit.stopped_epoch is not None:
        say(f"stopped by --time-limit {args.time_limit:g} after epoch {limit.stopped_epoch} of {recipe.epochs} "
            f"({model.optimizer.iterations.numpy():,} steps); continue with tfp-glow train --resume "
            f"--run-dir {job.run_dir}")


def _interrupted_message(job):
    """What Ctrl-C leaves: the run's last complete epoch, and how to continue from it."""
    latest = job.ckpt.latest
    done = runs.checkpoint_epoch(latest) if latest else None
    if done is None:
        return (f"interrupted before an epoch completed; {job.run_dir} holds no checkpoint to resume: "
                f"start it again")
    return (f"interrupted; {job.run_dir} keeps its last complete epoch, epoch {done} of {job.recipe.epochs} "
            f"({latest}): continue with tfp-glow train --resume --run-dir {job.run_dir}")


def _chief_callbacks(args, job):
    """The callbacks that write files: metrics.csv, TensorBoard logs, sample grids."""
    paths = job.paths
    sample_every = args.sample_every or (1 if job.image else max(1, job.recipe.epochs // 6))
    callbacks = []
    log_dir = None  # TensorBoard's, which SampleGrid logs its grids to as well
    if importlib.util.find_spec("tensorboard") is not None:
        log_dir = paths["logs"]
        callbacks.append(keras.callbacks.TensorBoard(log_dir, write_graph=False, update_freq="epoch",
                                                     profile_batch=0))
    else:
        say('note: TensorBoard logs skipped: the tensorboard package is not installed '
            '(pip install "tfp_glow[tensorboard]")')
    figures = _figures_available(job)
    callbacks.append(cb.SampleGrid(job.run_dir, n=args.n_samples, temperature=args.temperature, seed=args.seed,
                                   every=sample_every, log_dir=log_dir,
                                   data=None if job.image or not figures else np.asarray(job.parts["validation"])))
    return callbacks


def _figures_available(job):
    """Whether matplotlib (the `plots` extra) can draw the figures; says once what is skipped if not."""
    if extras.available("matplotlib"):
        return True
    if not getattr(job, "_said_no_figures", False):
        job._said_no_figures = True
        skipped = "curves.png" if job.image else "the density figures and curves.png"
        say(f'note: {skipped} skipped: matplotlib is not installed (pip install "tfp_glow[plots]")')
    return False


# ---------------------------------------------------------------------------------- the end
def _finish(args, job, t_start):
    """Test figures (of a float32 model with the weights, whatever the training policy); on the
    chief, the final weights, samples, curves (and density)."""
    model, paths, test_x = job.model, job.paths, job.parts["test"]
    test_bpd = job.hooks.test(model, job)
    if job.chief:
        runs.save_weights_atomically(model, paths["weights"])
        if job.ckpt.latest:  # which epoch model.weights.h5 holds, for a resume that has only it
            runs.update_run_config(job.run_dir, weights_epoch=runs.checkpoint_epoch(job.ckpt.latest))
        written = [paths["weights"]]
        figures = _figures_available(job)
        if job.image:
            images, cols, note, row_labels = job.hooks.grid(model, args)
            plots.save_image_grid(paths["samples_final"], images, cols=cols, row_labels=row_labels,
                                  title=plots.sample_title(args.temperature, seed=args.seed))
            written.append(paths["samples_final"] + note)
        elif tuple(job.info.shape) == (2,) and figures:
            samples = model.sample(2000, temperature=args.temperature, seed=args.seed)
            plots.plot_samples_2d(samples, paths["samples_final"],
                                  title=f"{job.recipe.flow} samples (T={args.temperature:g})")
            plots.plot_density_2d(model, np.asarray(test_x), paths["density"], temperature=1.0, seed=args.seed,
                                  title=f"{job.recipe.flow} on {job.data_name}")
            written += [paths["samples_final"], paths["density"]]
        if os.path.isfile(paths["metrics"]) and figures:
            plots.plot_curves(paths["metrics"], paths["curves"], metric="bits_per_dim" if job.image else "nll")
            written.append(paths["curves"])
        if job.ckpt.latest:
            written.append(job.ckpt.latest)
        say("wrote:")
        for p in written:
            say(f"  {p}")
    say(f"done in {time.time() - t_start:.1f} s")
    return test_bpd

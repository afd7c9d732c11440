"""`tfp-glow train --conditional`: a class-conditional flow p(x | y) on labelled data.

The same run directory and report as `tfp-glow train` (it reuses that module's recipe, fit and
callbacks), with: labelled splits (`tfp_glow.labeled`: the digits' classes, an `.npz` with `y`,
TFDS `(image, label)`), the flow built with `num_classes`, labels checked before any step,
`class_log_prior` from the training labels, the validation/test accuracy of the Bayes-rule
classifier `argmax_y log p(x | y) + log p(y)`, and a final sample grid with one row per class.
"""
import os
import time

import keras
import numpy as np

from tfp_glow import callbacks as cb
from tfp_glow import data as data_lib
from tfp_glow import distribute, labeled, plots, recipes, runs, splits
from tfp_glow.cli import train as train_cli
from tfp_glow.cli.common import float32_for_figures
from tfp_glow.cli.options import CLIError, say

__all__ = ["run"]


def run(args):
    """`tfp-glow train --conditional`; returns the test bits/dim of log p(x | y)."""
    t_start = time.time()
    previous_policy = keras.mixed_precision.global_policy()
    job = None
    try:
        try:  # preparation: any error is the user's input (exit 2), before any step
            job = _plan(args)
            _build(args, job)
        except (CLIError, ValueError, FileNotFoundError, RuntimeError) as e:
            raise CLIError(str(e)) from e
        train_cli._fit(args, job)
        return _finish(args, job, t_start)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        if job is not None and job.lock is not None:
            job.lock.release()


def _plan(args):
    stored = train_cli._stored_config(args) if args.resume else None
    if stored is not None and not stored["flow_config"].get("kwargs", {}).get("num_classes"):
        raise CLIError(f"--resume --conditional: the run in {args.run_dir!r} is not class-conditional.")
    strategy = distribute.get_strategy(args.strategy)
    chief = cb.is_chief(strategy)
    data_name = args.data or "digits"
    loaded = {split: labeled.load_labeled_split(data_name, split, args.val_fraction, args.test_fraction,
                                                args.data_dir) for split in splits.SPLITS}
    info, k = loaded["train"][2], loaded["train"][3]
    if info.kind != "image":
        raise CLIError(f"--conditional trains image flows; {data_name!r} is {info.kind} data.")
    flow = args.flow or recipes.default_flow(info.kind)
    if flow == "nice":
        raise CLIError("--conditional works with --flow glow or realnvp (nice takes no class conditioning).")
    recipe = train_cli._recipe(args, info, data_name, flow, stored)
    recipe = recipe.merged(flow_kwargs={**recipe.flow_kwargs, "num_classes": int(k)})
    run_dir = args.run_dir or recipes.default_run_dir(flow, data_name) + "-conditional"
    job = train_cli._Job(data_name, info, {s: loaded[s][0] for s in splits.SPLITS}, recipe, run_dir,
                         runs.run_paths(run_dir), strategy, chief, stored=stored)
    job.labels = {s: loaded[s][1] for s in splits.SPLITS}
    job.num_classes = int(k)
    return job


def _pairs(job, split):
    """The split as `(image, label)` pairs: a dataset of single examples."""
    return labeled.to_dataset(job.parts[split], job.labels[split])


def _check_splits(model, job):
    """Images and labels of every split against the model, before any step."""
    for split in splits.SPLITS:
        x, y = job.parts[split], job.labels[split]
        what = train_cli._WHAT[split]
        if y is None:  # a TFDS dataset of pairs
            first = [e for e in x.take(16)]
            if not first:
                raise ValueError(f"the {what} data set is empty")
            xs, ys = np.stack([np.asarray(a) for a, _ in first]), np.stack([np.asarray(b) for _, b in first])
        else:
            if len(x) == 0:
                raise ValueError(f"the {what} data set is empty")
            xs, ys = x, y
        try:
            model.check_batch(xs[:256])
            model.check_labels(ys, len(xs), what=f"{what} labels")
        except ValueError as e:
            raise ValueError(f"{what} data: {e}") from e


def _build(args, job):
    """As `tfp-glow train` builds (see cli/train.py `_build`), with labelled data."""
    if job.chief:
        train_cli._check_run_dir(args, job)
    keras.utils.set_random_seed(args.seed)
    train_cli.apply_precision(args, job)
    job.model, recipe = recipes.build_model(job.data_name, recipe=job.recipe, info=job.info, strategy=job.strategy,
                                            jit_compile=False if args.no_xla else "auto")
    model = job.model
    _check_splits(model, job)
    if job.labels["train"] is not None:
        model.set_class_prior(job.labels["train"])
    n_train = splits.num_examples(job.parts["train"])
    job.train_ds = data_lib.make_dataset(_pairs(job, "train"), recipe.batch_size, shuffle=True, seed=args.seed,
                                         drop_remainder=n_train is None or n_train >= recipe.batch_size,
                                         repeat=recipe.steps_per_epoch is not None)
    job.val_ds = data_lib.make_dataset(_pairs(job, "validation"), runs.EVAL_BATCH_SIZE, shuffle=False)
    if job.chief:
        job.lock = runs.RunLock(job.run_dir).acquire()
        train_cli._check_run_dir(args, job)
        if not args.resume and (runs.is_run_dir(job.run_dir) or runs.leftover_files(job.run_dir)):
            removed = runs.remove_run_files(job.run_dir)
            say(f"note: --overwrite: removed the previous run's {len(removed)} files in {job.run_dir}")
    job.ckpt = cb.FlowCheckpoint(job.paths["checkpoints"])
    if args.resume:
        train_cli._restore(job, recipe)
    if not model.is_initialized:
        batch = [b for b in _pairs(job, "train").batch(256).take(1)][0]
        with job.strategy.scope():
            model.initialize(batch)
    extra = {
        "epochs": recipe.epochs, "batch_size": recipe.batch_size, "lr": recipe.learning_rate, "seed": args.seed,
        "warmup_steps": recipe.warmup_steps, "clip_norm": recipe.clip_norm,
        "steps_per_epoch": recipe.steps_per_epoch, **train_cli._schedule_entries(recipe),
        "val_fraction": args.val_fraction, "test_fraction": args.test_fraction,
        "temperature": args.temperature, "strategy": args.strategy,
        "mixed_precision": args.mixed_precision, "xla": bool(model.jit_compile),
        "conditional": True, "num_classes": job.num_classes,
        "class_prior": np.exp(model.class_log_prior.numpy()).tolist(),
    }
    if job.stored is not None:
        extra.update({k: job.stored[k] for k in ("created", "weights_epoch") if k in job.stored})

    def write_config(epochs_done, **more):
        runs.save_run_config(job.run_dir, model, job.data_name, {**extra, "epochs_done": epochs_done, **more})

    job.write_config = write_config
    if job.chief and not args.resume:
        write_config(0)


def _finish(args, job, t_start):
    model, paths = job.model, job.paths
    test = data_lib.make_dataset(_pairs(job, "test"), runs.EVAL_BATCH_SIZE, shuffle=False)
    # a float32 model with the weights, whatever the training policy
    result = float32_for_figures(model).evaluate(test, verbose=0, return_dict=True)
    test_bpd = float(result["bits_per_dim"])
    say(f"test nll: {float(result['nll']):.4f} nats/example (log p(x | y))")
    say(f"test bits/dim: {test_bpd:.4f} (log p(x | y))")
    say(f"test accuracy: {float(result['accuracy']):.4f} (Bayes rule, argmax_y log p(x | y) + log p(y))")
    if job.chief:
        runs.save_weights_atomically(model, paths["weights"])
        if job.ckpt.latest:  # which epoch model.weights.h5 holds, for a resume that has only it
            runs.update_run_config(job.run_dir, weights_epoch=runs.checkpoint_epoch(job.ckpt.latest))
        k = job.num_classes
        per_class = max(1, args.n_samples // k)
        labels = np.repeat(np.arange(k), per_class)
        plots.save_image_grid(paths["samples_final"],
                              model.sample_images(len(labels), args.temperature, seed=args.seed, labels=labels),
                              cols=per_class)
        written = [paths["weights"], paths["samples_final"] + f" (one row per class, {per_class} each)"]
        if os.path.isfile(paths["metrics"]) and train_cli._figures_available(job):
            plots.plot_curves(paths["metrics"], paths["curves"], metric="bits_per_dim")
            written.append(paths["curves"])
        say("wrote:")
        for p in written:
            say(f"  {p}")
    say(f"done in {time.time() - t_start:.1f} s")
    return test_bpd

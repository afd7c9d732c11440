"""What differs between `tfp-glow train` and `tfp-glow train --conditional`: the data's hooks.

`cli/train.py` runs both with one plan, build, fit and finish; these classes supply the parts
that depend on the data carrying labels:

| hook | `Unlabelled` | `Labelled` (`--conditional`) |
|---|---|---|
| `load` | `splits.load_split` | `labeled.load_labeled_split`: images and labels |
| `recipe` | as the library's | `num_classes` added; image flows glow/realnvp only |
| `prepare` | checks the images of every split | checks images and labels; sets the class prior |
| `examples` | the split's images | `(image, label)` pairs |
| `init_batch` | `distribute.global_init_batch` | the same examples, with their labels |
| `config` | nothing more | `conditional`, `num_classes`, `class_prior` |
| `test` | bits/dim | bits/dim of `log p(x | y)` and the Bayes-rule accuracy |
| `grid` | samples | one row of samples per class |
"""
import numpy as np

from tfp_glow import data as data_lib
from tfp_glow import recipes, runs
from tfp_glow.training import distribute
from tfp_glow.data import labeled
from tfp_glow.data import splits
from tfp_glow.cli.common import check_first_batch, evaluate_data, float32_for_figures, print_eval
from tfp_glow.cli.options import CLIError, say

__all__ = ["Unlabelled", "Labelled", "for_args", "WHAT"]

WHAT = {"train": "training", "validation": "validation", "test": "test"}  # as the errors name the splits


def for_args(args):
    """The hooks of a run: `Labelled` with `--conditional`, else `Unlabelled`."""
    return Labelled() if getattr(args, "conditional", False) else Unlabelled()


class Unlabelled:
    """The hooks of an unconditional run (images or vectors, no labels)."""

    conditional = False

    def check_stored(self, args, stored):
        """Raise a `CLIError` if the resumed run is not of this kind."""

    def load(self, args, data_name):
        """`(parts, labels, info, num_classes)`: split -> data (and labels, or `None`)."""
        folder = {"image_size": tuple(args.image_size) if args.image_size else None, "grayscale": args.grayscale}
        loaded = {split: splits.load_split(data_name, split, args.val_fraction, args.test_fraction, args.data_dir,
                                           **folder) for split in splits.SPLITS}
        return {s: x for s, (x, _) in loaded.items()}, {s: None for s in splits.SPLITS}, loaded["train"][1], 0

    def recipe(self, recipe, info, data_name, flow):
        if recipe.label_dropout:
            raise CLIError("--label-dropout applies to class-conditional runs (--conditional).")
        return recipe

    def run_dir(self, flow, data_name, dequantization=None):
        """The default run directory of this recipe (`recipes.default_run_dir`)."""
        return recipes.default_run_dir(flow, data_name, dequantization, conditional=self.conditional)

    def prepare(self, model, job):
        """Checks every split against the model, before any step (`ValueError` naming the split)."""
        for split in splits.SPLITS:
            check_first_batch(model, job.parts[split], WHAT[split])

    def examples(self, job, split):
        """What `data.make_dataset` batches for a split."""
        return job.parts[split]

    def init_batch(self, job, seed):
        """The same deterministic global batch on every worker (`distribute.global_init_batch`)."""
        return distribute.global_init_batch(job.parts["train"], n=256, seed=seed)

    def config(self, model, job):
        """config.json's entries of this kind of run."""
        return {}

    def test(self, model, job):
        """Reports the test figures (fixed noise); returns the test bits/dim."""
        # a float32 model with the weights, whatever the training policy
        result = evaluate_data(float32_for_figures(model), job.parts["test"], runs.EVAL_BATCH_SIZE)
        return print_eval("test", result, job.image)

    def grid(self, model, args):
        """`(uint8 samples, columns or None, note, row labels or None)` of the final sample grid."""
        return model.sample_images(args.n_samples, args.temperature, seed=args.seed), None, "", None


class Labelled(Unlabelled):
    """The hooks of a class-conditional run, `p(x | y)` on labelled images."""

    conditional = True

    def check_stored(self, args, stored):
        if not stored["flow_config"].get("kwargs", {}).get("num_classes"):
            raise CLIError(f"--resume --conditional: the run in {args.run_dir!r} is not class-conditional.")

    def load(self, args, data_name):
        loaded = {split: labeled.load_labeled_split(data_name, split, args.val_fraction, args.test_fraction,
                                                    args.data_dir) for split in splits.SPLITS}
        info, self.num_classes = loaded["train"][2], int(loaded["train"][3])
        if info.kind != "image":
            raise CLIError(f"--conditional trains image flows; {data_name!r} is {info.kind} data.")
        return ({s: loaded[s][0] for s in splits.SPLITS}, {s: loaded[s][1] for s in splits.SPLITS}, info,
                self.num_classes)

    def recipe(self, recipe, info, data_name, flow):
        if flow == "nice":
            raise CLIError("--conditional works with --flow glow or realnvp (nice takes no class conditioning).")
        dropout = recipes.conditional_label_dropout(flow) if recipe.label_dropout is None else recipe.label_dropout
        return recipe.merged(flow_kwargs={**recipe.flow_kwargs, "num_classes": int(self.num_classes)},
                             label_dropout=dropout)

    def prepare(self, model, job):
        """Checks every split's images and labels; the class prior from the training labels."""
        for split in splits.SPLITS:
            x, y, what = job.parts[split], job.labels[split], WHAT[split]
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
        if job.labels["train"] is not None:
            model.set_class_prior(job.labels["train"])

    def examples(self, job, split):
        return labeled.to_dataset(job.parts[split], job.labels[split])

    def init_batch(self, job, seed):
        x, y = job.parts["train"], job.labels["train"]
        if y is None:  # a dataset of pairs: its images (the label changes nothing at initialisation)
            return distribute.global_init_batch(x, n=256, seed=seed)
        index = distribute.global_init_batch(np.arange(len(x)), n=256, seed=seed)  # the same examples
        return x[index], y[index]

    def config(self, model, job):
        return {"conditional": True, "num_classes": int(model.num_classes),
                "class_prior": np.exp(model.class_log_prior.numpy()).tolist()}

    def test(self, model, job):
        test = data_lib.make_dataset(self.examples(job, "test"), runs.EVAL_BATCH_SIZE, shuffle=False)
        result = float32_for_figures(model).evaluate(test, verbose=0, return_dict=True)
        say(f"test nll: {float(result['nll']):.4f} nats/example (log p(x | y))")
        say(f"test bits/dim: {float(result['bits_per_dim']):.4f} (log p(x | y))")
        say(f"test accuracy: {float(result['accuracy']):.4f} (Bayes rule, argmax_y log p(x | y) + log p(y))")
        return float(result["bits_per_dim"])

    def grid(self, model, args):
        per_class = max(1, args.n_samples // model.num_classes)
        labels = np.repeat(np.arange(model.num_classes), per_class)
        images = model.sample_images(len(labels), args.temperature, seed=args.seed, labels=labels)
        row_labels = [f"class {c}" for c in range(model.num_classes)]
        return images, per_class, f" (one row per class, {per_class} each)", row_labels

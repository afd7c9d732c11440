"""What the latent-toolkit commands share: sample grids by class and per-level temperature,
and labelled or plain splits of a run's data, with user errors as `CLIError`."""
import numpy as np

from tfp_glow.data import labeled
from tfp_glow.analysis import latent
from tfp_glow.data import splits
from tfp_glow.cli.common import folder_options
from tfp_glow.cli.options import CLIError

__all__ = ["latent_grid", "load_examples"]


def latent_grid(model, args):
    """`(uint8 images, columns, caption)` for `tfp-glow sample` with --labels / --by-class /
    --level-temperatures; `caption` is `save_image_grid`'s `title` and row or column labels."""
    # --level-temperatures replaces --temperature (it is not multiplied by it)
    temperature, per_level = (1.0, args.level_temperatures) if args.level_temperatures else (args.temperature, None)
    if per_level is not None:
        title = f"samples at level temperatures {', '.join(f'{t:g}' for t in per_level)}, seed {args.seed}"
    else:
        title = f"samples at temperature T={float(temperature):g}, seed {args.seed}"
    k = int(getattr(model, "num_classes", 0) or 0)
    guidance = getattr(args, "guidance", None)
    if guidance is not None:
        title += f", guidance {guidance:g}"
    if not k and (args.labels or args.by_class):
        raise CLIError("--labels and --by-class need a class-conditional run (tfp-glow train --conditional); "
                       "this run is unconditional.")
    try:
        if per_level is not None:
            latent.level_temperatures(model, per_level)  # checks the count against the levels
        if k:
            if args.labels:
                labels = model.check_labels(np.asarray(args.labels), None, what="--labels")
                labels = np.resize(labels, args.n) if len(labels) != args.n else labels
                cols = None
                caption = dict(title=f"{title}; classes {', '.join(str(int(c)) for c in labels)}")
            elif args.by_class:
                labels, cols = np.repeat(np.arange(k), args.n), args.n
                caption = dict(title=title, row_labels=[f"class {c}" for c in range(k)])
            else:
                labels, cols = np.arange(args.n) % k, k
                caption = dict(title=f"{title}; one class per column", col_labels=[str(c) for c in range(k)])
            images = model.sample_images(len(labels), temperature, seed=args.seed, labels=labels,
                                         level_temperatures=per_level, guidance=guidance)
            return images, cols, caption
        images = model.sample_images(args.n, temperature, seed=args.seed, level_temperatures=per_level,
                                     guidance=guidance)
        return images, None, dict(title=title)
    except ValueError as e:
        raise CLIError(str(e)) from e


def load_examples(config, name, split, data_dir=None, need_labels=False, with_info=False):
    """`(x, y)` of a split of data source `name` (the run's, found by `common.run_data`, or
    another), read with the run's split fractions and folder options; `y` is `None` where the
    source has no labels, and a `CLIError` if labels are needed. With `with_info`,
    `(x, y, info)` (the source's `tfp_glow.data.DataInfo`)."""
    val, test = config.get("val_fraction", splits.DEFAULT_VAL_FRACTION), config.get("test_fraction",
                                                                                      splits.DEFAULT_TEST_FRACTION)
    try:
        try:
            x, y, info, _ = labeled.load_labeled_split(name, split, val, test, data_dir)
        except ValueError:
            if need_labels:
                raise
            x, info = splits.load_split(name, split, val, test, data_dir, **folder_options(config, name))
            y = None
        if hasattr(x, "element_spec"):  # a TFDS dataset: small enough for these commands
            pairs = list(x.as_numpy_iterator()) if y is None else None
            if pairs and isinstance(pairs[0], tuple):
                x, y = np.stack([p[0] for p in pairs]), np.asarray([p[1] for p in pairs], np.int32)
            elif pairs:
                x = np.stack(pairs)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        raise CLIError(str(e)) from e
    return (np.asarray(x), y, info) if with_info else (np.asarray(x), y)

"""`tfp-glow manipulate RUN_DIR --attribute ...`: move encoded examples along an attribute
direction (mean latent with the attribute minus mean latent without, openai/glow demo's
`get_manipulators`) and decode them at several strengths: one row per example."""
import os

import numpy as np

from tfp_glow import plots
from tfp_glow.analysis import latent
from tfp_glow.cli.common import check_given_data, load_run, run_data
from tfp_glow.cli.latent_common import load_examples
from tfp_glow.cli.options import CLIError, say
from tfp_glow.cli.outputs import manipulate_name, refuse_existing

__all__ = ["run", "parse_attribute"]


def parse_attribute(text, num_classes):
    """`K` -> `(None, K)` (class K against the rest); `A:B` -> `(A, B)`; clear errors."""
    parts = text.split(":")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise CLIError(f"--attribute expects a class K or A:B (class indices); got {text!r}") from None
    if len(values) not in (1, 2):
        raise CLIError(f"--attribute expects a class K or A:B; got {text!r}")
    bad = [v for v in values if not 0 <= v < num_classes]
    if bad:
        raise CLIError(f"--attribute: class {bad[0]} is out of range; the data have {num_classes} classes "
                       f"(0..{num_classes - 1}).")
    if len(values) == 2 and values[0] == values[1]:
        raise CLIError(f"--attribute A:B needs two different classes; got {text!r}")
    return (None, values[0]) if len(values) == 1 else tuple(values)


def run(args):
    """Writes the grid; returns its path."""
    out_path = args.out or os.path.join(args.run_dir, manipulate_name(args))
    refuse_existing([out_path], args.overwrite)  # before anything is loaded: a refusal writes nothing
    model, config = load_run(args.run_dir)
    if not model.is_image:
        raise CLIError("manipulate works on image runs.")
    cond = bool(getattr(model, "num_classes", 0))
    data = run_data(config, args.run_dir, args.data)
    x, y, info = load_examples(config, data, args.split, args.data_dir, need_labels=True, with_info=True)
    check_given_data(config, info, args.data)
    xt, yt = load_examples(config, data, "test", args.data_dir, need_labels=True)
    try:
        model.check_batch(x[:1])
    except ValueError as e:
        raise CLIError(f"{args.split} data: {e}") from e
    k = int(max(y.max(), yt.max())) + 1
    source, target = parse_attribute(args.attribute, getattr(model, "num_classes", 0) or k)
    labels = y if cond else None
    try:
        if source is None:
            direction = latent.attribute_direction(model, x, y == target, labels=labels)
            pick = np.flatnonzero(yt != target)[:args.n]
        else:
            direction = latent.class_direction(model, x, y, source, target, labels=labels)
            pick = np.flatnonzero(yt == source)[:args.n]
        if not len(pick):
            raise CLIError("no test examples to move for this attribute.")
        out = latent.manipulate(model, xt[pick], direction, args.strengths, labels=yt[pick] if cond else None)
    except ValueError as e:
        raise CLIError(str(e)) from e
    images = out["images"].reshape((-1,) + tuple(model.event_shape))
    what = f"class {target} vs the rest" if source is None else f"class {source} -> class {target}"
    plots.save_image_grid(out_path, images, cols=len(out["strengths"]), title=f"{what}: strength per column",
                          col_labels=[f"{s:g}" for s in out["strengths"]])
    say(f"direction: {what}, estimated on {len(x)} {args.split} examples (|d| = {np.linalg.norm(direction):.3f}); "
        f"{len(pick)} test examples at strengths {', '.join(f'{s:g}' for s in out['strengths'])}")
    say(f"wrote {out_path}")
    return out_path

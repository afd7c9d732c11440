"""`tfp-glow interpolate RUN_DIR --a I --b J`: decode the path between two encoded examples.

The full latent is used (every split level included), so the first and last images of each row
are the examples themselves; one row per method (linear, spherical)."""
import os

import numpy as np

from tfp_glow import plots
from tfp_glow.analysis import latent
from tfp_glow.cli.common import check_given_data, load_run, run_data
from tfp_glow.cli.latent_common import load_examples
from tfp_glow.cli.options import CLIError, say
from tfp_glow.cli.outputs import interpolate_name, refuse_existing

__all__ = ["run"]


def run(args):
    """Writes the grid; returns its path."""
    out_path = args.out or os.path.join(args.run_dir, interpolate_name(args))
    refuse_existing([out_path], args.overwrite)  # before anything is loaded: a refusal writes nothing
    model, config = load_run(args.run_dir)
    if not model.is_image:
        raise CLIError("interpolate works on image runs.")
    cond = bool(getattr(model, "num_classes", 0))
    data = run_data(config, args.run_dir, args.data)
    x, y, info = load_examples(config, data, args.split, args.data_dir, need_labels=cond, with_info=True)
    check_given_data(config, info, args.data)
    for name, i in (("--a", args.a), ("--b", args.b)):
        if not 0 <= i < len(x):
            raise CLIError(f"{name} {i} is out of range: the {args.split} split has {len(x)} examples (0..{len(x) - 1}).")
    try:
        model.check_batch(x[:1])
    except ValueError as e:
        raise CLIError(f"{args.split} data: {e}") from e
    methods = ("linear", "spherical") if args.method == "both" else (args.method,)
    rows, err = [], 0.0
    for method in methods:
        kw = dict(label_a=int(y[args.a]), label_b=int(y[args.b])) if cond else {}
        try:
            out = latent.interpolate(model, x[args.a], x[args.b], args.steps, method, **kw)
        except ValueError as e:
            raise CLIError(str(e)) from e
        rows.append(out["images"])
        x_pre = np.asarray(model.preprocess(x[[args.a, args.b]], fixed_noise=True))
        err = max(err, float(np.abs(out["x"][[0, -1]] - x_pre).max()))
    plots.save_image_grid(out_path, np.concatenate(rows, axis=0), cols=args.steps, row_labels=list(methods),
                          title=f"{args.split} examples {args.a} -> {args.b}: one row per method, {args.steps} steps")
    say(f"interpolated {args.split} examples {args.a} and {args.b} ({', '.join(methods)}; {args.steps} steps); "
        f"end points reconstruct to within {err:.2e}")
    say(f"wrote {out_path}")
    return out_path

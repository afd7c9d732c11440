"""`tfp-glow sample RUN_DIR`: a PNG grid of samples (images) or a scatter plot (2-D data), under a
name of its own for each kind of grid (`outputs.sample_name`); an existing file is replaced
only with `--overwrite`."""
import os

import keras

from tfp_glow import plots
from tfp_glow.cli.common import load_run
from tfp_glow.cli.latent_common import latent_grid
from tfp_glow.cli.options import CLIError, say
from tfp_glow.cli.outputs import refuse_existing, sample_name

__all__ = ["run"]


def run(args):
    """Samples the run at `args.temperature`; returns the path written."""
    out = args.out or os.path.join(args.run_dir, sample_name(args))
    refuse_existing([out], args.overwrite)  # before anything is loaded: a refusal writes nothing
    model, config = load_run(args.run_dir)
    keras.utils.set_random_seed(args.seed)
    if model.is_image and (getattr(args, "labels", None) or getattr(args, "by_class", False)
                           or getattr(args, "level_temperatures", None) or getattr(model, "num_classes", 0)
                           or getattr(args, "guidance", None) is not None):
        images, cols, caption = latent_grid(model, args)  # by class and/or temperature per level
        if args.cols and args.cols != cols:  # the labels name the rows or columns of `cols`
            caption = dict(title=caption["title"])
        plots.save_image_grid(out, images, scale=args.scale, cols=args.cols or cols, **caption)
    elif model.is_image:
        images = model.sample_images(args.n, args.temperature, seed=args.seed)
        plots.save_image_grid(out, images, scale=args.scale, cols=args.cols,
                              title=plots.sample_title(args.temperature, seed=args.seed))
    elif tuple(model.event_shape) == (2,):
        samples = model.sample(args.n, temperature=args.temperature, seed=args.seed)
        plots.plot_samples_2d(samples, out, title=f"{config['flow_config']['flow']} samples (T={args.temperature:g})")
    else:
        raise CLIError(f"cannot draw samples of event shape {list(model.event_shape)}; sample works for images "
                       f"and 2-D vectors.")
    say(f"wrote {out}")
    return out

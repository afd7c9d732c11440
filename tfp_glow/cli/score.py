"""`tfp-glow score RUN_DIR DATA [--ood OTHER]`: per-example bits/dim and OOD scores.

Writes `<out>.csv` (one row per example: bits/dim, PNG bits/dim, typicality and
complexity-corrected scores) and `<out>.png` (histograms); with `--ood`, prints the AUROC of
each score for telling OTHER from DATA, and the typicality test's detection rate on batches."""
import os

import numpy as np

from tfp_glow import extras
from tfp_glow.analysis import scoring
from tfp_glow.cli.common import load_run
from tfp_glow.cli.latent_common import load_examples
from tfp_glow.cli.options import CLIError, say

__all__ = ["run"]


def _images(model, config, name, split, args):
    x, _ = load_examples({**config, "data": name}, name, split, args.data_dir)
    if args.resize:
        try:
            x = scoring.as_model_images(x, model.event_shape)
        except ValueError as e:
            raise CLIError(f"{name}: {e}") from e
    try:
        model.check_batch(x[:256])
    except ValueError as e:
        hint = "" if args.resize else " (--resize converts images to the model's shape)"
        raise CLIError(f"{name}: {e}{hint}") from e
    return x


def run(args):
    """Scores and reports; returns `{score: auroc}` (empty without --ood)."""
    model, config = load_run(args.run_dir)
    if not model.is_image:
        raise CLIError("score works on image runs.")
    ref_x, _ = load_examples(config, None, "validation", args.data_dir)
    x_in = _images(model, config, args.data, args.split, args)
    x_out = _images(model, config, args.ood, args.split, args) if args.ood else None
    reference = scoring.bits_per_dim(model, ref_x)
    tables = {args.data: scoring.score_table(model, x_in, reference)}
    if x_out is not None:
        tables[args.ood] = scoring.score_table(model, x_out, reference)
    slug = "".join(c if c.isalnum() else "_" for c in os.path.basename(args.data.rstrip("/")))
    prefix = args.out or os.path.join(args.run_dir, f"score_{slug}")
    csv_path = scoring.write_csv(prefix + ".csv", tables)
    say(f"reference H = {reference.mean():.4f} bits/dim ({len(ref_x)} validation examples of {config['data']})")
    for name, t in tables.items():
        say(f"{name} ({args.split}, {len(t['bits_per_dim'])} examples): bits/dim mean {t['bits_per_dim'].mean():.4f}, "
            f"PNG bits/dim mean {t['png_bits_per_dim'].mean():.4f}")
    result = {}
    if x_out is not None:
        t_in, t_out = tables[args.data], tables[args.ood]
        for score in scoring.SCORES:
            result[score] = scoring.auroc(t_in[score], t_out[score])
            say(f"AUROC {score}: {result[score]:.4f} ({args.ood} positive)")
        test_in = scoring.typicality_test(t_in["bits_per_dim"], reference, batch=args.batch)
        test_out = scoring.typicality_test(t_out["bits_per_dim"], reference, batch=args.batch)
        result[f"typicality_batch{args.batch}"] = scoring.auroc(test_in["batch_scores"], test_out["batch_scores"])
        say(f"AUROC typicality on batches of {args.batch}: {result[f'typicality_batch{args.batch}']:.4f}; "
            f"test at alpha 0.01 (epsilon {test_in['epsilon']:.4f}) flags {np.mean(test_out['flagged']):.1%} of "
            f"{args.ood} batches and {np.mean(test_in['flagged']):.1%} of {args.data} batches")
    png_path = None
    if extras.available("matplotlib"):
        png_path = scoring.plot_histograms(prefix + ".png", tables, title=f"{config['data']} model",
                                           aurocs=result)  # in the legends
    else:
        say('note: the histograms are skipped: matplotlib is not installed (pip install "tfp_glow[plots]")')
    say(f"wrote {csv_path}")
    if png_path:
        say(f"wrote {png_path}")
    return result

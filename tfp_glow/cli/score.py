"""`tfp-glow score RUN_DIR DATA [--ood OTHER]`: per-example bits/dim and OOD scores.

Writes `<out>.csv` (one row per example: bits/dim, PNG bits/dim, typicality and
complexity-corrected scores) and `<out>.png` (histograms); with `--ood`, prints the AUROC of
each score for telling OTHER from DATA, and the typicality test's detection rate on batches.
Every figure is computed before any file is written, so a refusal (an empty split, an existing
output without `--overwrite`) or a failure leaves nothing behind. Any split size of at least
one example works; the typicality test on batches of M is skipped, with a note, when a set
has fewer than M examples.
"""
import os

import numpy as np

from tfp_glow import extras
from tfp_glow.analysis import scoring
from tfp_glow.cli.common import check_given_data, load_run, run_data
from tfp_glow.cli.latent_common import load_examples
from tfp_glow.cli.options import CLIError, say
from tfp_glow.cli.outputs import refuse_existing, score_prefix

__all__ = ["run"]


def _checked(model, x, name, split, resize):
    """`x` in the model's shape (with --resize), checked; a `CLIError` for an empty split."""
    if not len(x):
        raise CLIError(f"score needs at least one example in the {split} split of {name!r}; it has none.")
    if resize:
        try:
            x = scoring.as_model_images(x, model.event_shape)
        except ValueError as e:
            raise CLIError(f"{name}: {e}") from e
    try:
        model.check_batch(x[:256])
    except ValueError as e:
        hint = "" if resize else " (--resize converts images to the model's shape)"
        raise CLIError(f"{name}: {e}{hint}") from e
    return x


def _reference(model, config, args):
    """The validation examples of the run's data (found from any folder, or `--data`)."""
    own = run_data(config, args.run_dir, args.run_data)
    x, _, info = load_examples(config, own, "validation", args.data_dir, with_info=True)
    check_given_data(config, info, args.run_data)
    return _checked(model, x, own, "validation", resize=False), own


def _ood_report(tables, reference, args):
    """`(result, lines)`: the AUROC of every score and the typicality test on batches."""
    t_in, t_out = tables[args.data], tables[args.ood]
    result, lines = {}, []
    for score in scoring.SCORES:
        result[score] = scoring.auroc(t_in[score], t_out[score])
        lines.append(f"AUROC {score}: {result[score]:.4f} ({args.ood} positive)")
    n_in, n_out, m = len(t_in["bits_per_dim"]), len(t_out["bits_per_dim"]), args.batch
    if min(n_in, n_out) < m:
        lines.append(f"note: the typicality test on batches of {m} is skipped: it needs at least {m} examples in each "
                     f"set ({args.data} has {n_in}, {args.ood} has {n_out}); a smaller --batch runs it")
        return result, lines
    test_in = scoring.typicality_test(t_in["bits_per_dim"], reference, batch=m)
    test_out = scoring.typicality_test(t_out["bits_per_dim"], reference, batch=m)
    key = f"typicality_batch{m}"
    result[key] = scoring.auroc(test_in["batch_scores"], test_out["batch_scores"])
    lines.append(f"AUROC typicality on batches of {m}: {result[key]:.4f}; test at alpha 0.01 (epsilon "
                 f"{test_in['epsilon']:.4f}) flags {np.mean(test_out['flagged']):.1%} of {args.ood} batches and "
                 f"{np.mean(test_in['flagged']):.1%} of {args.data} batches")
    return result, lines


def _write(prefix, tables, title, plot, aurocs):
    """The CSV (and the PNG with `plot`, the AUROCs in its legends); a failed write removes what
    it had written."""
    written = []
    try:
        written.append(scoring.write_csv(prefix + ".csv", tables))
        if plot:
            written.append(scoring.plot_histograms(prefix + ".png", tables, title=title, aurocs=aurocs))
    except BaseException:
        for path in written:
            os.remove(path)
        raise
    return written


def run(args):
    """Scores and reports; returns `{score: auroc}` (empty without --ood)."""
    prefix = args.out or os.path.join(args.run_dir, score_prefix(args.data, args.ood, args.split))
    plot = extras.available("matplotlib")
    refuse_existing([prefix + ".csv"] + ([prefix + ".png"] if plot else []), args.overwrite,
                    hint="choose another --out prefix")
    model, config = load_run(args.run_dir)
    if not model.is_image:
        raise CLIError("score works on image runs.")
    ref_x, own = _reference(model, config, args)
    sets = {args.data: args.split}
    if args.ood:
        sets[args.ood] = args.split
    images = {name: _checked(model, load_examples(config, name, split, args.data_dir)[0], name, split, args.resize)
              for name, split in sets.items()}
    reference = scoring.bits_per_dim(model, ref_x)
    tables = {name: scoring.score_table(model, x, reference) for name, x in images.items()}
    result, lines = _ood_report(tables, reference, args) if args.ood else ({}, [])
    written = _write(prefix, tables, f"{config['data']} model", plot, result)  # every figure is computed
    if not plot:
        say('note: the histograms are skipped: matplotlib is not installed (pip install "tfp_glow[plots]")')
    say(f"reference H = {reference.mean():.4f} bits/dim ({len(ref_x)} validation examples of {own})")
    for name, t in tables.items():
        say(f"{name} ({args.split}, {len(t['bits_per_dim'])} examples): bits/dim mean {t['bits_per_dim'].mean():.4f}, "
            f"PNG bits/dim mean {t['png_bits_per_dim'].mean():.4f}")
    for line in lines:
        say(line)
    for path in written:
        say(f"wrote {path}")
    return result

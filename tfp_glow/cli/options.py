"""The `tfp-glow` parser: one function per subcommand, the user-error type and `say`.

Everything here is the standard library: `tfp-glow --help` builds this parser without
importing TensorFlow. `train`'s options live in `cli/train_options.py` (with the help texts
and the choices the parser repeats from the library), the argument types and the help
formatter in `cli/arg_types.py`; both are re-exported here.
"""
import argparse

from tfp_glow.cli.arg_types import (HelpFormatter, ema_decay, float_list, fraction, hidden_sizes,  # noqa: F401
                                    int_list, n_bits, non_negative_float, non_negative_int, positive_float,
                                    positive_int, signed_float_list, spline_bins)
from tfp_glow.cli.train_options import (DATA_HELP, DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION,  # noqa: F401
                                        DEFAULTS_HELP, FLOW_CHOICES, POLICIES, STRATEGIES, add_train_command)

__all__ = ["CLIError", "build_parser", "say", "add_latent_commands", "FLOW_CHOICES", "STRATEGIES", "POLICIES",
           "DATA_HELP", "DEFAULTS_HELP"]

COMMANDS = ("train", "sample", "evaluate", "export", "interpolate", "manipulate", "score", "bench")


class CLIError(Exception):
    """A user error: printed as `error: <message>`, exit code 2."""


def say(*args):
    """Prints a line of the command's report (flushed, so it interleaves with Keras' output)."""
    print(*args, flush=True)


def build_parser():
    """The `tfp-glow` argument parser."""
    parser = argparse.ArgumentParser(
        prog="tfp-glow",
        description="NICE, RealNVP and Glow flows (TensorFlow Probability bijectors) trained with Keras.\n\n"
                    "Run `tfp-glow train` to train a small Glow on the offline 8x8 digits in a few\n"
                    "minutes; `tfp-glow SUBCOMMAND --help` describes each subcommand.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks instead of one `error:` line (also TFP_GLOW_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    add_train_command(sub)
    add_sample_command(sub)
    add_evaluate_command(sub)
    add_export_command(sub)
    add_latent_commands(sub)
    sub.add_parser("bench", add_help=False, help="speed and quality benchmarks (tfp-glow bench --help)",
                   description="Benchmarks; options are handled by tfp_glow.bench.")
    return parser


def add_sample_command(sub):
    """`tfp-glow sample RUN_DIR`."""
    s = sub.add_parser("sample", help="write a PNG grid of samples of a trained run",
                       formatter_class=HelpFormatter,
                       description="Sample a trained run at a temperature and write a PNG grid (images) or a "
                                   "scatter plot (2-D data).")
    s.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `tfp-glow train`")
    s.add_argument("--n", type=positive_int, default=64, help="number of samples")
    s.add_argument("--temperature", type=positive_float, default=0.7,
                   help="standard deviation of the latent (1.0 = the model, < 1 = sharper samples)")
    s.add_argument("--seed", type=int, default=0, help="sampling seed")
    s.add_argument("--out", default=None,
                   help="output PNG (default: RUN_DIR/samples_t<T>_seed<S>.png; --by-class, --labels and "
                        "--level-temperatures each add to the name)")
    s.add_argument("--overwrite", action="store_true", help="replace the output PNG if it exists (else an error)")
    s.add_argument("--cols", type=positive_int, default=None, help="grid columns (default ceil(sqrt(n)))")
    s.add_argument("--scale", type=positive_int, default=None,
                   help="nearest-neighbour upscale factor (default: images at least 48 px)")
    s.add_argument("--labels", type=int_list, default=None,
                   help="conditional runs: class of each sample, comma-separated (default: the classes in turn)")
    s.add_argument("--by-class", action="store_true",
                   help="conditional runs: a grid with one row per class, --n samples in each")
    s.add_argument("--level-temperatures", type=float_list, default=None,
                   help="one temperature per level, finest first (e.g. 0.5,0.8 for a 2-level glow); replaces "
                        "--temperature")
    s.add_argument("--guidance", type=non_negative_float, default=None,
                   help="class-conditional tarflow runs: classifier-free guidance g (extrapolate from the mean "
                        "class by g; 0 = the conditional sample; default: off)")


def add_evaluate_command(sub):
    """`tfp-glow evaluate RUN_DIR`."""
    e = sub.add_parser("evaluate", help="print bits/dim of a trained run on a data split",
                       formatter_class=HelpFormatter,
                       description="Evaluate a trained run: prints '<split> bits/dim: X.XXXX' (and the nll) with "
                                   "fixed dequantization noise, so the figure repeats run to run and equals the "
                                   "one `train` printed.",
                       epilog=DATA_HELP)
    e.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `tfp-glow train`")
    e.add_argument("--data", default=None,
                   help="data source of the same shape and bit depth as the run's (default: the run's data, found "
                        "from any folder; for data that moved, its new place)")
    e.add_argument("--data-dir", default=None, help="TensorFlow Datasets data directory")
    e.add_argument("--split", choices=("train", "validation", "test"), default="test", help="split to evaluate")
    e.add_argument("--no-xla", action="store_true", help="evaluate without XLA (jit_compile=False)")


def add_export_command(sub):
    """`tfp-glow export RUN_DIR PATH`."""
    x = sub.add_parser("export", help="export a trained run as a TensorFlow SavedModel",
                       formatter_class=HelpFormatter,
                       description="Export a trained run with tfp_glow.serving.export_saved_model(model, PATH).")
    x.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `tfp-glow train`")
    x.add_argument("path", metavar="PATH", help="output SavedModel directory")
    x.add_argument("--signatures", default=None,
                   help="comma-separated signatures to export (default: all the model offers, e.g. "
                        "log_prob,log_prob_float,log_prob_image,sample,sample_n,encode,encode_image,decode "
                        "for images)")
    x.add_argument("--version", default=None, metavar="N",
                   help="write TF Serving's layout PATH/N/ (N an int >= 1, or 'next': one above the highest "
                        "version in PATH); serve it with tensorflow_model_server --model_base_path=PATH")
    x.add_argument("--overwrite", action="store_true",
                   help="replace a SavedModel already in PATH (once the new one is complete); without it, an "
                        "existing SavedModel is an error. Numbered versions are never overwritten")


def add_latent_commands(sub):
    """The latent toolkit's and scoring's subcommands: interpolate, manipulate, score."""
    add_interpolate_command(sub)
    add_manipulate_command(sub)
    add_score_command(sub)


def add_interpolate_command(sub):
    """`tfp-glow interpolate RUN_DIR`."""
    i = sub.add_parser("interpolate", help="decode the path between the latents of two examples (PNG grid)",
                       formatter_class=HelpFormatter,
                       description="Encode examples A and B of a split into the full latent (every split level "
                                   "included, so the end points reconstruct exactly), interpolate linearly and "
                                   "spherically, decode, and write a PNG grid: one row per method.")
    i.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `tfp-glow train`")
    i.add_argument("--a", type=int, default=0, help="index of the first example in the split")
    i.add_argument("--b", type=int, default=1, help="index of the second example in the split")
    i.add_argument("--steps", type=positive_int, default=8, help="points on each path, end points included")
    i.add_argument("--method", choices=("both", "linear", "spherical"), default="both", help="interpolation")
    i.add_argument("--split", choices=("train", "validation", "test"), default="test", help="split to take A, B from")
    i.add_argument("--data", default=None, help="data source (default: the run's data, found from any folder)")
    i.add_argument("--data-dir", default=None, help="TensorFlow Datasets data directory")
    i.add_argument("--out", default=None,
                   help="output PNG (default: RUN_DIR/interpolate_A_B.png; a --method or --split other than "
                        "the default adds to the name)")
    i.add_argument("--overwrite", action="store_true", help="replace the output PNG if it exists (else an error)")


def add_manipulate_command(sub):
    """`tfp-glow manipulate RUN_DIR --attribute ...`."""
    m = sub.add_parser("manipulate", help="move encoded examples along an attribute direction (PNG grid)",
                       formatter_class=HelpFormatter,
                       description="The direction is the mean latent of examples with the attribute minus the mean "
                                   "latent of those without (openai/glow demo's get_manipulators). On labelled data "
                                   "(digits) an attribute is a class: --attribute 3 uses 'is a 3'; --attribute 1:7 "
                                   "uses mean z(class 7) - mean z(class 1) and moves examples of class 1. Each row is "
                                   "an example decoded at --strengths.")
    m.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `tfp-glow train`")
    m.add_argument("--attribute", required=True,
                   help="K (examples of class K against the rest) or A:B (class A towards class B)")
    m.add_argument("--strengths", type=signed_float_list, default=(-1.0, -0.5, 0.0, 0.5, 1.0, 1.5),
                   help="multiples of the direction to decode, comma-separated")
    m.add_argument("--n", type=positive_int, default=6, help="examples to move (rows)")
    m.add_argument("--split", choices=("train", "validation", "test"), default="train",
                   help="split the direction is estimated on (the examples moved come from the test split)")
    m.add_argument("--data", default=None,
                   help="labelled data source (default: the run's data, found from any folder)")
    m.add_argument("--data-dir", default=None, help="TensorFlow Datasets data directory")
    m.add_argument("--out", default=None,
                   help="output PNG (default: RUN_DIR/manipulate_<attribute>.png; a --split other than train "
                        "adds to the name)")
    m.add_argument("--overwrite", action="store_true", help="replace the output PNG if it exists (else an error)")


def add_score_command(sub):
    """`tfp-glow score RUN_DIR DATA [--ood OTHER]`."""
    c = sub.add_parser("score", help="per-example bits/dim of a data set, histograms and OOD AUROC",
                       formatter_class=HelpFormatter,
                       description="Score every example of DATA (its --split) with the run's model: bits/dim, the "
                                   "typicality score |bpd - mean training bpd| (Nalisnick et al. 2019) and the "
                                   "complexity-corrected score bpd - PNG bits/dim (Serra et al. 2020). Writes a CSV and a "
                                   "histogram PNG. With --ood OTHER (the data to tell apart from DATA), also reports "
                                   "the AUROC of each score (OTHER = positive) and the typicality test's detection "
                                   "rate on batches.")
    c.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `tfp-glow train`")
    c.add_argument("data", metavar="DATA", help="in-distribution data source (e.g. digits)")
    c.add_argument("--ood", default=None, help="a second data source to detect (e.g. photos32 --resize, an .npz)")
    c.add_argument("--split", choices=("train", "validation", "test"), default="test", help="split of DATA and OTHER")
    c.add_argument("--resize", action="store_true",
                   help="convert images to the model's shape first (area resize; RGB -> gray by luminance, gray -> "
                        "RGB by repetition)")
    c.add_argument("--batch", type=positive_int, default=8, help="batch size M of the typicality test")
    c.add_argument("--data-dir", default=None, help="TensorFlow Datasets data directory")
    c.add_argument("--data", dest="run_data", metavar="PATH", default=None,
                   help="where the run's own data is, if it moved (its validation split is the reference H; "
                        "default: as config.json records it, found from any folder)")
    c.add_argument("--out", default=None,
                   help="output prefix of the CSV and PNG (default: RUN_DIR/score_<data>, _vs_<ood> with --ood, "
                        "_<split> for a split other than test)")
    c.add_argument("--overwrite", action="store_true", help="replace the CSV and PNG if they exist (else an error)")

"""The `tfp-glow` parser: options, argument types, help texts, and the user-error type.

Everything here is the standard library: `tfp-glow --help` builds this parser without
importing TensorFlow. The defaults that depend on the data live in `tfp_glow.recipes` (the
options default to `None`, "not given") and the held-out fractions in `tfp_glow.data.splits`; the
parser repeats those values and choices (tests/test_startup.py, test_recipes.py check them).
"""
import argparse
import math

__all__ = ["CLIError", "build_parser", "say", "FLOW_CHOICES", "STRATEGIES", "POLICIES", "DATA_HELP", "DEFAULTS_HELP"]

FLOW_CHOICES = ("glow", "realnvp", "nice", "nsf", "maf")  # tfp_glow.models.FLOWS
STRATEGIES = ("none", "mirrored", "multiworker")  # tfp_glow.training.distribute.STRATEGIES
POLICIES = ("auto", "none", "mixed_bfloat16", "mixed_float16")  # tfp_glow.numerics.precision.CHOICES
DEFAULT_VAL_FRACTION = 0.1  # tfp_glow.data.splits.DEFAULT_VAL_FRACTION
DEFAULT_TEST_FRACTION = 0.1  # tfp_glow.data.splits.DEFAULT_TEST_FRACTION

DATA_HELP = """\
data (--data):
  digits           the UCI 8x8 handwritten digits, shipped with tfp_glow (default). Splits:
                   1293 train / 144 validation / 360 test images (tfp_glow.data.load_digits).
  digits28         the same digits bilinearly upsampled to 28x28 (MNIST-sized), offline,
                   with the same splits.
  photos32         random 32x32 RGB crops (at scales 32, 48, 64) of the two photographs
                   that ship with scikit-learn (CIFAR-sized; pip install "tfp_glow[photos]"),
                   offline: 6000 train / 500 validation / 1000 test, cropped from disjoint
                   bands of each photograph.
  moons, circles, checkerboard, rings, 8gaussians
                   generated 2-D toy sets (2000 points per split; train, validation and test
                   are drawn with seeds 0, 1, 2). Vector data: the default flow is realnvp,
                   and a density figure is written.
  mnist, cifar10, tfds:NAME
                   TensorFlow Datasets (needs internet on first use, or --data-dir with the
                   prepared data). Train = the first (1 - val-fraction) of split 'train',
                   validation = the rest of 'train', test = split 'test'.
  PATH.npz         uint8 images under key 'x' ([N, H, W, C] or [N, H, W]); keys 'train',
                   'validation', 'test' are used as those splits when present.
  DIRECTORY        a folder of .png/.jpg/.bmp/.gif images of one size (RGB; --grayscale,
                   --image-size H W); sub-folders 'train', 'validation', 'test' are used as
                   splits when present.
  For .npz files and folders without a 'test' / 'validation' split, a fixed random
  test-fraction / val-fraction of the examples (permutation seed 0) is held out.
"""

DEFAULTS_HELP = """\
defaults per data kind (any option given explicitly wins; tfp_glow.recipes holds them):
  digits (8x8):    glow, levels 2, steps 8, hidden 128, 30 epochs, batch 64, lr 2e-3 with a
                   50-step warmup, --n-bits 5 (about 1.5-2 min on 2 CPU cores)
  other images:    glow, levels = largest of 3, 2, 1 dividing H and W by 2**levels, steps 8,
                   hidden 256, 10 epochs, batch 64, lr 1e-3 with a 200-step warmup, --n-bits 8
                   (digits28: levels 2; photos32: levels 3)
  2-D toy data:    realnvp with 8 couplings of 2 x 128 units, 20 epochs of 100 steps, batch 256,
                   lr 1e-3 with a 100-step warmup
  every flow:      gradients clipped at global norm 50; a step with a non-finite loss or
                   gradient is skipped (never applied) and counted, and training stops with
                   exit code 1 after 20 such steps in a row
  nice:            4 couplings of 3 x 256 units (the paper: 5 x 1000); on digits 100 epochs at
                   lr 1e-2 (its scaling layer starts at 1 and must shrink constant pixels)
  realnvp images:  levels 2, 3 couplings per stage, hidden 64
  nsf:             rational-quadratic spline couplings, 8 bins on [-3, 3], an actnorm before
                   each: 4 couplings of 2 x 128 units (vectors), 8 of 2 x 256 (images, flattened)
  maf:             5 MAF layers (affine, MADE 2 x 128 units; 2 x 256 on flattened images), the
                   order reversed between layers; --transform spline for spline MAF
"""


class CLIError(Exception):
    """A user error: printed as `error: <message>`, exit code 2."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Raw descriptions/epilogs; `(default: X)` appended unless the help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS or not action.option_strings):
            return text
        return f"{text} (default: {action.default})"


def say(*args):
    """Prints a line of the command's report (flushed, so it interleaves with Keras' output)."""
    print(*args, flush=True)


# ---------------------------------------------------------------------------- argument types
def _number(convert, ok, expected, out_of_range=None):
    """An argparse type: `convert(text)`, which must satisfy `ok`; the errors say what was expected."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {out_of_range or expected}; got {text!r}")
        return value

    return parse


positive_int = _number(int, lambda v: v >= 1, "a positive integer")
positive_float = _number(float, lambda v: v > 0 and math.isfinite(v), "a positive number")
non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
non_negative_float = _number(float, lambda v: 0 <= v < float("inf"), "a number >= 0", "a finite number >= 0")
fraction = _number(float, lambda v: 0 < v < 1, "a fraction in (0, 1)")
n_bits = _number(int, lambda v: 1 <= v <= 8, "an integer in [1, 8]")
spline_bins = _number(int, lambda v: v >= 2, "an integer >= 2")


def ema_decay(text):
    """`--ema`: a decay in (0, 1), or `0` / `none` / `off` for no weight average (0.0)."""
    if text.strip().lower() in ("none", "off"):
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a decay in (0, 1), e.g. 0.999, or 0 / none; got {text!r}") from None
    if value == 0:
        return 0.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a decay in (0, 1), e.g. 0.999, or 0 / none; got {text!r}")
    return value


def hidden_sizes(text):
    """`N` or `N,N,...`: positive layer widths, as a tuple."""
    try:
        units = tuple(int(u) for u in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or a comma-separated list of ints; got {text!r}")
    if not units or min(units) < 1:
        raise argparse.ArgumentTypeError(f"hidden sizes must be positive; got {text!r}")
    return units


def int_list(text):
    """`N,N,...`: integers, as a tuple."""
    try:
        return tuple(int(u) for u in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers; got {text!r}") from None


def float_list(text):
    """`X,X,...`: finite numbers >= 0, as a tuple."""
    try:
        values = tuple(float(u) for u in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of numbers; got {text!r}") from None
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers >= 0; got {text!r}")
    return values


def add_latent_commands(sub):
    """The latent toolkit's and scoring's subcommands: interpolate, manipulate, score."""
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
    i.add_argument("--data", default=None, help="data source (default: the run's data)")
    i.add_argument("--data-dir", default=None, help="TensorFlow Datasets data directory")
    i.add_argument("--out", default=None, help="output PNG (default: RUN_DIR/interpolate_A_B.png)")

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
    m.add_argument("--data", default=None, help="labelled data source (default: the run's data)")
    m.add_argument("--data-dir", default=None, help="TensorFlow Datasets data directory")
    m.add_argument("--out", default=None, help="output PNG (default: RUN_DIR/manipulate_<attribute>.png)")

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
    c.add_argument("--out", default=None, help="output prefix (default: RUN_DIR/score_<data>)")


def signed_float_list(text):
    """`X,X,...`: finite numbers, as a tuple."""
    try:
        values = tuple(float(u) for u in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of numbers; got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers; got {text!r}")
    return values


# ------------------------------------------------------------------------------------ parser
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
    sub = parser.add_subparsers(dest="command", metavar="{train,sample,evaluate,export,interpolate,manipulate,score,bench}")

    # ------------------------------------------------------------------------- train
    t = sub.add_parser(
        "train", help="train a flow and write a run directory (checkpoints, samples, metrics)",
        formatter_class=HelpFormatter,
        description="Train a flow with Keras fit on tf.data, with progress bars and per-epoch validation\n"
                    "nll and bits/dim. Writes into the run directory: config.json, checkpoints/ (every\n"
                    "good epoch), metrics.csv, logs/ (TensorBoard), samples_epochNNN.png, and at the end\n"
                    "samples_final.png, curves.png, model.weights.h5 (and density.png for 2-D data).\n"
                    "Prints the test bits/dim (fixed dequantization noise).",
        epilog=DATA_HELP + "\n" + DEFAULTS_HELP)
    t.add_argument("--flow", choices=FLOW_CHOICES, default=None,
                   help="flow family (default: glow for images, realnvp for vectors); nsf (neural spline "
                        "flow) and maf (masked autoregressive flow) flatten images to vectors")
    t.add_argument("--data", default=None,
                   help="data source, see below (default: digits; with --resume: the run's data)")
    t.add_argument("--data-dir", default=None, help="TensorFlow Datasets data directory (tfds sources)")
    t.add_argument("--image-size", type=positive_int, nargs=2, metavar=("H", "W"), default=None,
                   help="image folders: resize every image to H x W (bilinear); without it all must share one size")
    t.add_argument("--grayscale", action="store_true",
                   help="image folders: read the images as one channel (BT.601 luma) instead of RGB")
    t.add_argument("--run-dir", default=None, help="output directory (default: runs/<flow>-<data>)")
    t.add_argument("--epochs", type=positive_int, default=None,
                   help="total epochs (with --resume: including those already done; default per data kind)")
    t.add_argument("--batch-size", type=positive_int, default=None,
                   help="global training batch size (default: 64 for images, 256 for vectors)")
    t.add_argument("--steps-per-epoch", type=positive_int, default=None,
                   help="training steps per epoch, repeating the data (default: one pass over the training "
                        "data; 100 for 2-D toy data)")
    t.add_argument("--lr", type=positive_float, default=None,
                   help="Adam learning rate (default: 2e-3 for digits, 1e-3 otherwise)")
    t.add_argument("--warmup-steps", type=non_negative_int, default=None,
                   help="linear learning-rate warmup over this many steps, 0 = off (default: 50 for digits, "
                        "100 for vectors, 200 otherwise)")
    t.add_argument("--clip-norm", type=non_negative_float, default=None,
                   help="clip gradients to this global norm, 0 = off (default: 50)")
    t.add_argument("--lr-schedule", choices=("constant", "cosine"), default=None,
                   help="learning rate after the warmup: constant, or cosine = a half cosine down to 0 at the "
                        "run's last step (epochs x steps per epoch) (default: constant; with --resume: the run's)")
    t.add_argument("--ema", type=ema_decay, default=None, metavar="DECAY",
                   help="keep an exponential moving average of the weights with this decay (e.g. 0.999; its "
                        "decay warms up as min(DECAY, (1+t)/(10+t))); validation, test figures, samples, "
                        "evaluate, sample and export then use the averaged weights; 0 or none = off "
                        "(default: off; with --resume: the run's, which cannot change)")
    t.add_argument("--n-bits", type=n_bits, default=None,
                   help="bit depth images are reduced to (default: 5 for digits, 8 for other images; "
                        "not used for vectors)")
    t.add_argument("--dequantization", choices=("uniform", "variational"), default=None,
                   help="images: uniform noise, or a learned q(u|x) trained jointly (Flow++); the figures are "
                        "then the variational bound (default: uniform; with --resume: the run's)")
    t.add_argument("--val-fraction", type=fraction, default=DEFAULT_VAL_FRACTION,
                   help="fraction held out for validation (npz/folder/tfds without a validation split)")
    t.add_argument("--test-fraction", type=fraction, default=DEFAULT_TEST_FRACTION,
                   help="fraction held out for testing (npz/folder without a test split)")
    m = t.add_argument_group("model options (default per data kind; see below)")
    m.add_argument("--levels", type=positive_int, default=None,
                   help="glow: number of levels L (squeezes); realnvp images: number of scales")
    m.add_argument("--steps", type=positive_int, default=None,
                   help="glow: steps K per level; realnvp: couplings per stage (images) or in all "
                        "(vectors); nice, nsf: coupling layers; maf: autoregressive layers")
    m.add_argument("--hidden", type=hidden_sizes, default=None,
                   help="conditioner width: channels of the conv nets (glow, realnvp images), or MLP "
                        "units as N or N,N,... (nice, nsf, maf, realnvp vectors)")
    m.add_argument("--coupling", choices=("affine", "additive"), default=None,
                   help="glow: coupling kind (default affine)")
    m.add_argument("--lu", action=argparse.BooleanOptionalAction, default=None,
                   help="glow: LU-parametrised 1x1 convolutions (default on)")
    m.add_argument("--split-prior", choices=("conditional", "channel", "none"), default=None,
                   help="glow: priors at the splits (default: channel for colour images, else conditional)")
    m.add_argument("--logit-alpha", type=positive_float, default=None,
                   help="realnvp images: RealNVP's logit preprocessing with this alpha (default off)")
    m.add_argument("--learn-prior", action=argparse.BooleanOptionalAction, default=None,
                   help="realnvp images: learned priors at the splits (default off)")
    m.add_argument("--bins", type=spline_bins, default=None,
                   help="nsf, maf --transform spline: spline bins (default 8)")
    m.add_argument("--transform", choices=("affine", "spline"), default=None,
                   help="maf: elementwise transform of each autoregressive layer (default affine)")
    o = t.add_argument_group("sampling and output")
    o.add_argument("--temperature", type=positive_float, default=0.7,
                   help="sampling temperature of samples_final.png and the per-epoch samples")
    o.add_argument("--n-samples", type=positive_int, default=64, help="samples per grid")
    o.add_argument("--sample-every", type=positive_int, default=None,
                   help="write samples_epochNNN.png every this many epochs (default: 1 for images, "
                        "epochs/6 for 2-D data)")
    r = t.add_argument_group("execution")
    r.add_argument("--seed", type=int, default=0, help="random seed (keras.utils.set_random_seed)")
    r.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --run-dir: removes only the files a run writes "
                        "(config.json, checkpoints, metrics.csv, TensorBoard events, samples, weights); "
                        "without it, an existing run is an error")
    r.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir from its latest checkpoint (model, optimizer, "
                        "epoch); model options come from its config.json")
    r.add_argument("--no-xla", action="store_true",
                   help="never compile with XLA (jit_compile=False); by default FlowModel.compile decides "
                        "(jit_compile='auto')")
    r.add_argument("--strategy", choices=STRATEGIES, default="none",
                   help="tf.distribute strategy: mirrored = all local devices, multiworker = "
                        "MultiWorkerMirroredStrategy configured by TF_CONFIG")
    r.add_argument("--mixed-precision", choices=POLICIES, default=None,
                   help="Keras policy of the conditioner networks (the rest, reported figures too, is float32): "
                        "auto = mixed_bfloat16 with native bf16, else none (default: auto; --resume: the run's)")
    r.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                   help="Keras verbosity (default: 1 = progress bar on a terminal, else 2 = one line per epoch)")
    t.add_argument("--conditional", action="store_true",
                   help="train a class-conditional flow p(x|y) on labelled data (digits, digits28, an .npz with "
                        "labels under 'y', tfds (image, label)); reports the test accuracy of the Bayes-rule "
                        "classifier argmax_y log p(x|y) + log p(y) (default run dir: runs/<flow>-<data>-conditional)")

    # ------------------------------------------------------------------------ sample
    s = sub.add_parser("sample", help="write a PNG grid of samples of a trained run",
                       formatter_class=HelpFormatter,
                       description="Sample a trained run at a temperature and write a PNG grid (images) or a "
                                   "scatter plot (2-D data).")
    s.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `tfp-glow train`")
    s.add_argument("--n", type=positive_int, default=64, help="number of samples")
    s.add_argument("--temperature", type=positive_float, default=0.7,
                   help="standard deviation of the latent (1.0 = the model, < 1 = sharper samples)")
    s.add_argument("--seed", type=int, default=0, help="sampling seed")
    s.add_argument("--out", default=None, help="output PNG (default: RUN_DIR/samples_t<T>_seed<S>.png)")
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

    # ---------------------------------------------------------------------- evaluate
    e = sub.add_parser("evaluate", help="print bits/dim of a trained run on a data split",
                       formatter_class=HelpFormatter,
                       description="Evaluate a trained run: prints '<split> bits/dim: X.XXXX' (and the nll) with "
                                   "fixed dequantization noise, so the figure repeats run to run and equals the "
                                   "one `train` printed.",
                       epilog=DATA_HELP)
    e.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `tfp-glow train`")
    e.add_argument("--data", default=None, help="data source (default: the run's data)")
    e.add_argument("--data-dir", default=None, help="TensorFlow Datasets data directory")
    e.add_argument("--split", choices=("train", "validation", "test"), default="test", help="split to evaluate")
    e.add_argument("--no-xla", action="store_true", help="evaluate without XLA (jit_compile=False)")

    # ------------------------------------------------------------------------ export
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

    add_latent_commands(sub)

    # ------------------------------------------------------------------------- bench
    sub.add_parser("bench", add_help=False, help="speed and quality benchmarks (tfp-glow bench --help)",
                   description="Benchmarks; options are handled by tfp_glow.bench.")
    return parser

"""`tfp-glow`: train, sample, evaluate, export and benchmark flows from the command line.

    tfp-glow train                      # small Glow on the offline 8x8 digits, a few minutes
    tfp-glow train --data moons         # RealNVP on 2-D toy data, with density pictures
    tfp-glow sample runs/glow-digits --temperature 0.7 --out samples.png
    tfp-glow evaluate runs/glow-digits  # test bits/dim with fixed dequantization noise
    tfp-glow export runs/glow-digits exported/

Errors in the input (unknown data, data that does not fit the model, bad pixel values, an
empty data set, a missing run directory) print `error: <message>` to stderr and exit with
code 2 before any training step; a NaN/inf loss during training exits with code 1.

TensorFlow is imported only when a subcommand runs, so `--help` is quick.
"""
import argparse
import math
import os
import shutil
import sys
import time

__all__ = ["main", "build_parser", "CLIError"]

FLOW_CHOICES = ("glow", "realnvp", "nice")
STRATEGIES = ("none", "mirrored", "multiworker")
POLICIES = ("none", "mixed_bfloat16", "mixed_float16")
TOY_NAMES = ("moons", "circles", "checkerboard", "rings", "8gaussians")
TFDS_SHORTCUTS = ("mnist", "cifar10")
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_TEST_FRACTION = 0.1
HOLDOUT_SEED = 0

DATA_HELP = """\
data (--data):
  digits           scikit-learn's 8x8 handwritten digits, offline (default). Fixed splits:
                   1293 train / 144 validation / 360 test images (tfp_glow.data.load_digits).
  digits28         the same digits bilinearly upsampled to 28x28 (MNIST-sized), offline,
                   with the same splits.
  photos32         random 32x32 RGB crops (at scales 32, 48, 64) of the two photographs
                   that ship with scikit-learn (CIFAR-sized), offline: 6000 train / 500
                   validation / 1000 test, cropped from disjoint bands of each photograph.
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
  DIRECTORY        a folder of .png/.jpg/.bmp images of one size (RGB); sub-folders
                   'train', 'validation', 'test' are used as splits when present.
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
"""


class CLIError(Exception):
    """A user error: printed as `error: <message>`, exit code 2."""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Raw descriptions/epilogs; `(default: X)` appended unless the help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS or not action.option_strings):
            return text
        return f"{text} (default: {action.default})"


# ---------------------------------------------------------------------------------- parser
def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}")
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; got {text!r}")
    return value


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0; got {text!r}") from None
    if not (value >= 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0; got {text!r}")
    return value


def _first_given(*values):
    """The first value that is not `None` (0 counts as given)."""
    return next((v for v in values if v is not None), None)


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1); got {text!r}")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1); got {text!r}")
    return value


def _n_bits(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer in [1, 8]; got {text!r}")
    if not 1 <= value <= 8:
        raise argparse.ArgumentTypeError(f"expected an integer in [1, 8]; got {text!r}")
    return value


def _hidden(text):
    try:
        units = tuple(int(u) for u in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or a comma-separated list of ints; got {text!r}")
    if not units or min(units) < 1:
        raise argparse.ArgumentTypeError(f"hidden sizes must be positive; got {text!r}")
    return units


def build_parser():
    """The `tfp-glow` argument parser."""
    parser = argparse.ArgumentParser(
        prog="tfp-glow",
        description="NICE, RealNVP and Glow flows (TensorFlow Probability bijectors) trained with Keras.\n\n"
                    "Run `tfp-glow train` to train a small Glow on the offline 8x8 digits in a few\n"
                    "minutes; `tfp-glow SUBCOMMAND --help` describes each subcommand.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="{train,sample,evaluate,export,bench}")

    # ------------------------------------------------------------------------- train
    t = sub.add_parser(
        "train", help="train a flow and write a run directory (checkpoints, samples, metrics)",
        formatter_class=_HelpFormatter,
        description="Train a flow with Keras fit on tf.data, with progress bars and per-epoch validation\n"
                    "nll and bits/dim. Writes into the run directory: config.json, checkpoints/ (every\n"
                    "good epoch), metrics.csv, logs/ (TensorBoard), samples_epochNNN.png, and at the end\n"
                    "samples_final.png, curves.png, model.weights.h5 (and density.png for 2-D data).\n"
                    "Prints the test bits/dim (fixed dequantization noise).",
        epilog=DATA_HELP + "\n" + DEFAULTS_HELP)
    t.add_argument("--flow", choices=FLOW_CHOICES, default=None,
                   help="flow family (default: glow for images, realnvp for vectors)")
    t.add_argument("--data", default=None,
                   help="data source, see below (default: digits; with --resume: the run's data)")
    t.add_argument("--data-dir", default=None, help="TensorFlow Datasets data directory (tfds sources)")
    t.add_argument("--run-dir", default=None, help="output directory (default: runs/<flow>-<data>)")
    t.add_argument("--epochs", type=_positive_int, default=None,
                   help="total epochs (with --resume: including those already done; default per data kind)")
    t.add_argument("--batch-size", type=_positive_int, default=None,
                   help="global training batch size (default: 64 for images, 256 for vectors)")
    t.add_argument("--steps-per-epoch", type=_positive_int, default=None,
                   help="training steps per epoch, repeating the data (default: one pass over the training "
                        "data; 100 for 2-D toy data)")
    t.add_argument("--lr", type=_positive_float, default=None,
                   help="Adam learning rate (default: 2e-3 for digits, 1e-3 otherwise)")
    t.add_argument("--warmup-steps", type=_non_negative_int, default=None,
                   help="linear learning-rate warmup over this many steps, 0 = off (default: 50 for digits, "
                        "100 for vectors, 200 otherwise)")
    t.add_argument("--clip-norm", type=_non_negative_float, default=None,
                   help="clip gradients to this global norm, 0 = off (default: 50)")
    t.add_argument("--n-bits", type=_n_bits, default=None,
                   help="bit depth images are reduced to (default: 5 for digits, 8 for other images; "
                        "not used for vectors)")
    t.add_argument("--val-fraction", type=_fraction, default=DEFAULT_VAL_FRACTION,
                   help="fraction held out for validation (npz/folder/tfds without a validation split)")
    t.add_argument("--test-fraction", type=_fraction, default=DEFAULT_TEST_FRACTION,
                   help="fraction held out for testing (npz/folder without a test split)")
    m = t.add_argument_group("model options (default per data kind; see below)")
    m.add_argument("--levels", type=_positive_int, default=None,
                   help="glow: number of levels L (squeezes); realnvp images: number of scales")
    m.add_argument("--steps", type=_positive_int, default=None,
                   help="glow: steps K per level; realnvp: couplings per stage (images) or in all "
                        "(vectors); nice: coupling layers")
    m.add_argument("--hidden", type=_hidden, default=None,
                   help="conditioner width: channels of the conv nets (glow, realnvp images), or MLP "
                        "units as N or N,N,... (nice, realnvp vectors)")
    m.add_argument("--coupling", choices=("affine", "additive"), default=None,
                   help="glow: coupling kind (default affine)")
    m.add_argument("--lu", action=argparse.BooleanOptionalAction, default=None,
                   help="glow: LU-parametrised 1x1 convolutions (default on)")
    m.add_argument("--logit-alpha", type=_positive_float, default=None,
                   help="realnvp images: RealNVP's logit preprocessing with this alpha (default off)")
    m.add_argument("--learn-prior", action=argparse.BooleanOptionalAction, default=None,
                   help="realnvp images: learned priors at the splits (default off)")
    o = t.add_argument_group("sampling and output")
    o.add_argument("--temperature", type=_positive_float, default=0.7,
                   help="sampling temperature of samples_final.png and the per-epoch samples")
    o.add_argument("--n-samples", type=_positive_int, default=64, help="samples per grid")
    o.add_argument("--sample-every", type=_positive_int, default=None,
                   help="write samples_epochNNN.png every this many epochs (default: 1 for images, "
                        "epochs/6 for 2-D data)")
    r = t.add_argument_group("execution")
    r.add_argument("--seed", type=int, default=0, help="random seed (keras.utils.set_random_seed)")
    r.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir from its latest checkpoint (model, optimizer, "
                        "epoch); model options come from its config.json")
    r.add_argument("--no-xla", action="store_true",
                   help="never compile with XLA (jit_compile=False); by default FlowModel.compile decides "
                        "(jit_compile='auto')")
    r.add_argument("--strategy", choices=STRATEGIES, default="none",
                   help="tf.distribute strategy: mirrored = all local devices, multiworker = "
                        "MultiWorkerMirroredStrategy configured by TF_CONFIG")
    r.add_argument("--mixed-precision", choices=POLICIES, default="none",
                   help="Keras mixed-precision policy for the conditioner networks (the flow's "
                        "log-dets stay float32)")
    r.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                   help="Keras verbosity (default: 1 = progress bar on a terminal, else 2 = one line per epoch)")

    # ------------------------------------------------------------------------ sample
    s = sub.add_parser("sample", help="write a PNG grid of samples of a trained run",
                       formatter_class=_HelpFormatter,
                       description="Sample a trained run at a temperature and write a PNG grid (images) or a "
                                   "scatter plot (2-D data).")
    s.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `tfp-glow train`")
    s.add_argument("--n", type=_positive_int, default=64, help="number of samples")
    s.add_argument("--temperature", type=_positive_float, default=0.7,
                   help="standard deviation of the latent (1.0 = the model, < 1 = sharper samples)")
    s.add_argument("--seed", type=int, default=0, help="sampling seed")
    s.add_argument("--out", default=None, help="output PNG (default: RUN_DIR/samples_t<T>_seed<S>.png)")
    s.add_argument("--cols", type=_positive_int, default=None, help="grid columns (default ceil(sqrt(n)))")
    s.add_argument("--scale", type=_positive_int, default=None,
                   help="nearest-neighbour upscale factor (default: images at least 48 px)")

    # ---------------------------------------------------------------------- evaluate
    e = sub.add_parser("evaluate", help="print bits/dim of a trained run on a data split",
                       formatter_class=_HelpFormatter,
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
                       formatter_class=_HelpFormatter,
                       description="Export a trained run with tfp_glow.export.export_saved_model(model, PATH).")
    x.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `tfp-glow train`")
    x.add_argument("path", metavar="PATH", help="output SavedModel directory")
    x.add_argument("--signatures", default=None,
                   help="comma-separated signatures to export (default: all the model offers, e.g. "
                        "log_prob,log_prob_float,sample,encode,decode for images)")

    # ------------------------------------------------------------------------- bench
    sub.add_parser("bench", add_help=False, help="speed and quality benchmarks (tfp-glow bench --help)",
                   description="Benchmarks; options are handled by tfp_glow.bench.")
    return parser


# ------------------------------------------------------------------------------ helpers
def _say(*args):
    print(*args, flush=True)


def _data_kind(name):
    return "vector" if name in TOY_NAMES else "image"


def _data_slug(name):
    name = os.fspath(name).rstrip("/\\")
    if name.startswith("tfds:"):
        name = name[5:]
    base = os.path.basename(name)
    if base.lower().endswith(".npz"):
        base = base[:-4]
    slug = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in base)
    return slug or "data"


def _is_tfds(name):
    return name.startswith("tfds:") or name in TFDS_SHORTCUTS


def _available_splits(name):
    """Split names an npz file / image folder provides itself."""
    import numpy as np

    if name.lower().endswith(".npz"):
        if not os.path.isfile(name):
            raise FileNotFoundError(f"npz file not found: {name!r}")
        with np.load(name, allow_pickle=False) as npz:
            return set(npz.keys())
    if os.path.isdir(name):
        return {d for d in os.listdir(name) if os.path.isdir(os.path.join(name, d))}
    return set()


def load_split(name, split, val_fraction=DEFAULT_VAL_FRACTION, test_fraction=DEFAULT_TEST_FRACTION,
               data_dir=None):
    """One split of a data source, as the CLI defines splits (see `DATA_HELP`).

    Returns:
      `(data, info)`: a numpy array or (tfds) a `tf.data.Dataset` of single examples, and
      the `tfp_glow.data.DataInfo`.
    """
    from tfp_glow import data as data_lib

    if name in data_lib.OFFLINE_IMAGE_NAMES or name in TOY_NAMES:
        return data_lib.get_source(name, split)
    if _is_tfds(name):
        keep = int(round(100 * (1 - val_fraction)))
        tfds_split = {"train": f"train[:{keep}%]", "validation": f"train[{keep}%:]", "test": "test"}[split]
        return data_lib.get_source(name, tfds_split, data_dir=data_dir)
    if not (name.lower().endswith(".npz") or os.path.isdir(name)):
        return data_lib.get_source(name, split)  # raises the "unknown data source" error
    available = _available_splits(name)
    if split in available:
        return data_lib.get_source(name, split)
    pool, info = data_lib.get_source(name, "train")
    n = len(pool)
    n_test = 0 if "test" in available else max(1, int(round(test_fraction * n)))
    n_val = 0 if "validation" in available else max(1, int(round(val_fraction * n)))
    if n - n_test - n_val < 1:
        raise ValueError(f"{name!r} has {n} examples: too few to hold out {n_test} for testing and {n_val} "
                         f"for validation and still train; add data or validation/test splits.")
    import numpy as np

    perm = np.random.default_rng(HOLDOUT_SEED).permutation(n)
    parts = {"train": perm[:n - n_test - n_val], "validation": perm[n - n_test - n_val:n - n_test],
             "test": perm[n - n_test:]}
    x = pool[np.sort(parts[split])]
    return x, data_lib.DataInfo(info.kind, info.shape, info.n_bits_native, int(len(x)))


def _num_examples(x):
    if hasattr(x, "shape") and not hasattr(x, "element_spec"):
        return int(x.shape[0])
    card = int(x.cardinality())
    return card if card >= 0 else None


def _make_strategy(name):
    from tfp_glow.distribute import get_strategy

    return get_strategy(name)


def _model_kwargs(flow, info, args, data_name):
    """Builder kwargs from the defaults per data kind and the explicit model options."""
    image = info.kind == "image"
    shape = tuple(info.shape)
    if not image and flow == "glow":
        raise CLIError(f"glow works on images [H, W, C]; {data_name!r} is vector data of shape {list(shape)}. "
                       f"Use --flow realnvp or --flow nice.")
    applies = {
        "levels": flow == "glow" or (flow == "realnvp" and image),
        "coupling": flow == "glow", "lu": flow == "glow",
        "logit_alpha": flow == "realnvp" and image, "learn_prior": flow == "realnvp" and image,
    }
    for opt, ok in applies.items():
        if getattr(args, opt) is not None and not ok:
            raise CLIError(f"--{opt.replace('_', '-')} does not apply to --flow {flow} on "
                           f"{'image' if image else 'vector'} data.")

    def single_hidden(default):
        if args.hidden is None:
            return default
        if len(args.hidden) != 1:
            raise CLIError(f"--hidden for {flow} on images is one channel count; got {args.hidden}.")
        return args.hidden[0]

    def mlp_hidden(default):
        if args.hidden is None:
            return default
        return args.hidden if len(args.hidden) > 1 else (args.hidden[0],) * len(default)

    from tfp_glow import recipes  # TensorFlow-heavy: imported when a command runs

    base = recipes.recipe_for(info.kind, shape, flow, data_name).flow_kwargs
    if flow == "glow":
        return {"levels": args.levels or base["levels"], "steps": args.steps or base["steps"],
                "hidden_channels": single_hidden(base["hidden_channels"]),
                "coupling": args.coupling or base["coupling"], "lu": base["lu"] if args.lu is None else args.lu}
    if flow == "realnvp":
        if image:
            kw = {"levels": args.levels or base["levels"], "couplings_per_stage": args.steps or base["couplings_per_stage"],
                  "hidden": single_hidden(base["hidden"])}
            if args.logit_alpha is not None:
                kw["logit_alpha"] = args.logit_alpha
            if args.learn_prior:
                kw["learn_prior"] = True
            return kw
        return {"couplings_per_stage": args.steps or base["couplings_per_stage"],
                "hidden": list(mlp_hidden(tuple(base["hidden"])))}
    return {"couplings": args.steps or base["couplings"], "hidden": list(mlp_hidden(tuple(base["hidden"])))}


def _defaults_for(info, data_name, flow):
    from tfp_glow import recipes

    r = recipes.recipe_for(info.kind, tuple(info.shape), flow, data_name)
    return {"epochs": r.epochs, "batch_size": r.batch_size, "lr": r.learning_rate,
            "steps_per_epoch": r.steps_per_epoch, "warmup_steps": r.warmup_steps, "clip_norm": r.clip_norm,
            "n_bits": r.n_bits}


def _clean_run_dir(run_dir):
    """Removes the artifacts of a previous run (only files a run writes)."""
    from tfp_glow import runs

    removed = False
    for name in runs.RUN_ARTIFACTS:
        path = os.path.join(run_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
            removed = True
        elif os.path.exists(path):
            os.remove(path)
            removed = True
    for name in os.listdir(run_dir):
        if name.startswith("samples_epoch") and name.endswith(".png"):
            os.remove(os.path.join(run_dir, name))
            removed = True
    return removed


def _tensorboard_available():
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _evaluate(model, x, batch_size):
    """`{"nll", "bits_per_dim"}` of `x` with fixed noise (deterministic batches)."""
    from tfp_glow import data as data_lib

    ds = data_lib.make_dataset(x, batch_size, shuffle=False)
    return model.evaluate(ds, verbose=0, return_dict=True)


def _print_eval(split, result, image):
    bpd = float(result["bits_per_dim"])
    nll = float(result["nll"])
    if image:
        _say(f"{split} nll: {nll:.4f} nats/example")
    else:
        _say(f"{split} nll: {nll:.4f} nats/example (continuous density)")
    _say(f"{split} bits/dim: {bpd:.4f}")
    return bpd


def _check_first_batch(model, x, what):
    """Checks the first examples of a split against the model before any training step."""
    import numpy as np

    if hasattr(x, "element_spec"):
        batch = [e for e in x.take(16)]
        if not batch:
            raise ValueError(f"the {what} data set is empty")
        first = np.stack([np.asarray(b) for b in batch])
    else:
        if len(x) == 0:
            raise ValueError(f"the {what} data set is empty")
        first = x[:256]
    try:
        model.check_batch(first)
    except ValueError as e:
        raise ValueError(f"{what} data: {e}") from e
    return first


# -------------------------------------------------------------------------------- train
def _train(args):
    import keras
    import numpy as np
    import tensorflow as tf

    from tfp_glow import callbacks as cb
    from tfp_glow import data as data_lib
    from tfp_glow import plots, recipes, runs, stability
    from tfp_glow.models import FlowConfig, count_parameters
    from tfp_glow.training import FlowModel

    t_start = time.time()
    previous_policy = keras.mixed_precision.global_policy()
    # ----------------------------------------------------------- preparation (exit 2)
    try:
        strategy = _make_strategy(args.strategy)
        chief = cb.is_chief(strategy)
        stored = None
        if args.resume:
            if args.run_dir is None:
                data_guess = args.data or "digits"
                flow_guess = args.flow or ("glow" if _data_kind(data_guess) == "image" else "realnvp")
                args.run_dir = os.path.join("runs", f"{flow_guess}-{_data_slug(data_guess)}")
            stored = runs.load_run_config(args.run_dir)
            stored_flow = stored["flow_config"]["flow"]
            if args.flow is not None and args.flow != stored_flow:
                raise CLIError(f"--resume: the run in {args.run_dir!r} trains {stored_flow}, not {args.flow}.")
            args.flow = stored_flow
            args.data = args.data or stored["data"]
            if args.n_bits is not None and args.n_bits != stored["n_bits"]:
                raise CLIError(f"--resume: the run in {args.run_dir!r} uses --n-bits {stored['n_bits']}.")
            for key in ("val_fraction", "test_fraction"):
                setattr(args, key, stored.get(key, getattr(args, key)))
        data_name = args.data or "digits"
        train_x, info = load_split(data_name, "train", args.val_fraction, args.test_fraction, args.data_dir)
        val_x, _ = load_split(data_name, "validation", args.val_fraction, args.test_fraction, args.data_dir)
        test_x, _ = load_split(data_name, "test", args.val_fraction, args.test_fraction, args.data_dir)
        image = info.kind == "image"
        flow = args.flow or ("glow" if image else "realnvp")
        if not image and args.n_bits is not None:
            raise CLIError(f"--n-bits applies to image data; {data_name!r} is vector data.")
        n_bits = (args.n_bits or recipes.recipe_for(info.kind, tuple(info.shape), flow, data_name).n_bits
                  ) if image else None
        event_shape = tuple(info.shape)
        if any(d is None for d in event_shape):
            raise CLIError(f"{data_name!r} has images of varying size {list(event_shape)}; the flows need "
                           f"one fixed size.")
        kwargs = _model_kwargs(flow, info, args, data_name)
        flow_config = FlowConfig(flow, event_shape, kwargs)
        if stored is not None:
            stored_cfg = FlowConfig.from_dict(stored["flow_config"])
            given = any(getattr(args, k) is not None for k in
                        ("levels", "steps", "hidden", "coupling", "lu", "logit_alpha", "learn_prior"))
            if given and flow_config.to_dict() != stored_cfg.to_dict():
                raise CLIError(f"--resume: the model options differ from the run's config.json "
                               f"({stored_cfg.to_dict()}); drop them to resume that model.")
            if tuple(stored_cfg.event_shape) != event_shape:
                raise CLIError(f"--resume: {data_name!r} has shape {list(event_shape)} but the run was trained "
                               f"on {list(stored_cfg.event_shape)}.")
            flow_config = stored_cfg
        defaults = _defaults_for(info, data_name, flow_config.flow)
        epochs = args.epochs or (stored or {}).get("epochs") or defaults["epochs"]
        batch_size = args.batch_size or (stored or {}).get("batch_size") or defaults["batch_size"]
        lr = args.lr or (stored or {}).get("lr") or defaults["lr"]
        steps_per_epoch = args.steps_per_epoch or (stored or {}).get("steps_per_epoch") or defaults["steps_per_epoch"]
        warmup_steps = _first_given(args.warmup_steps, (stored or {}).get("warmup_steps"), defaults["warmup_steps"])
        clip_norm = _first_given(args.clip_norm, (stored or {}).get("clip_norm"), defaults["clip_norm"])
        run_dir = args.run_dir or os.path.join("runs", f"{flow}-{_data_slug(data_name)}")
        paths = runs.run_paths(run_dir)

        keras.utils.set_random_seed(args.seed)
        if args.mixed_precision != "none":
            keras.mixed_precision.set_global_policy(args.mixed_precision)
        with strategy.scope():
            model = FlowModel(flow_config, n_bits=n_bits)
            model.compile(keras.optimizers.Adam(lr), warmup_steps=warmup_steps, clip_norm=clip_norm or None,
                          jit_compile=False if args.no_xla else "auto")
        _check_first_batch(model, train_x, "training")
        _check_first_batch(model, val_x, "validation")
        _check_first_batch(model, test_x, "test")
        n_train = _num_examples(train_x)
        drop = n_train is None or n_train >= batch_size
        train_ds = data_lib.make_dataset(train_x, batch_size, shuffle=True, seed=args.seed, drop_remainder=drop,
                                         repeat=steps_per_epoch is not None)
        val_ds = data_lib.make_dataset(val_x, runs.EVAL_BATCH_SIZE, shuffle=False)

        if chief:
            os.makedirs(run_dir, exist_ok=True)
            if not args.resume and runs.is_run_dir(run_dir):
                _clean_run_dir(run_dir)
                _say(f"note: replacing the previous run in {run_dir} (use --resume to continue it)")
        ckpt = cb.FlowCheckpoint(paths["checkpoints"])
        initial_epoch = 0
        if args.resume:
            initial_epoch = ckpt.restore(model)
            if args.lr is not None:  # the checkpoint restored the old learning rate; --lr overrides it
                model.optimizer.learning_rate = (stability.LinearWarmup(lr, warmup_steps) if warmup_steps else lr)
            if initial_epoch == 0:
                _say(f"note: {paths['checkpoints']} has no checkpoint; training {run_dir} from the start")
        if not model.is_initialized:
            # The same deterministic global batch on every worker, identical values on every replica.
            from tfp_glow.distribute import global_init_batch, initialize_actnorm_identically

            with strategy.scope():
                initialize_actnorm_identically(model, global_init_batch(train_x, n=256, seed=args.seed), strategy)
        if chief:
            runs.save_run_config(run_dir, model, data_name, {
                "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": args.seed,
                "warmup_steps": warmup_steps, "clip_norm": clip_norm,
                "steps_per_epoch": steps_per_epoch,
                "val_fraction": args.val_fraction, "test_fraction": args.test_fraction,
                "temperature": args.temperature, "strategy": args.strategy,
                "mixed_precision": args.mixed_precision, "xla": not args.no_xla,
            })
    except (CLIError, ValueError, FileNotFoundError, RuntimeError) as e:
        keras.mixed_precision.set_global_policy(previous_policy)
        raise CLIError(str(e)) from e

    # ------------------------------------------------------------------------ training
    try:
        n_val, n_test = _num_examples(val_x), _num_examples(test_x)
        shape_txt = "x".join(str(d) for d in event_shape)
        bits_txt = f", {n_bits} bits" if image else ""
        _say(f"tfp-glow train: {flow} on {data_name} ({shape_txt}{bits_txt}); examples: "
             f"{n_train if n_train is not None else '?'} train / {n_val if n_val is not None else '?'} validation / "
             f"{n_test if n_test is not None else '?'} test")
        _say(f"model: {flow} {', '.join(f'{k}={v}' for k, v in flow_config.kwargs.items())}; "
             f"{count_parameters(model.distribution):,} parameters; epochs {epochs}, batch {batch_size}, "
             f"lr {lr:g} (warmup {warmup_steps} steps), clip norm {clip_norm or 'off'}, xla {'off' if args.no_xla else 'auto'}, strategy {args.strategy} "
             f"({strategy.num_replicas_in_sync} replica(s)), precision {args.mixed_precision}")
        _say(f"run dir: {run_dir}")
        guard = cb.NaNGuard(paths["checkpoints"])
        callbacks = [guard, ckpt]
        if chief:
            sample_every = args.sample_every or (1 if image else max(1, epochs // 6))
            callbacks.append(keras.callbacks.CSVLogger(paths["metrics"], append=args.resume))
            if _tensorboard_available():
                callbacks.append(keras.callbacks.TensorBoard(paths["logs"], write_graph=False, update_freq="epoch",
                                                             profile_batch=0))
            else:
                _say("note: TensorBoard logs skipped: the tensorboard package is not installed "
                     "(pip install tensorboard)")
            callbacks += [
                cb.SampleGrid(run_dir, n=args.n_samples, temperature=args.temperature, seed=args.seed,
                              every=sample_every, data=None if image else np.asarray(val_x)),
            ]
        verbose = args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2)
        if initial_epoch >= epochs:
            _say(f"the run already completed {initial_epoch} epoch(s) (--epochs {epochs}); nothing to train")
        else:
            if initial_epoch:
                _say(f"resuming from epoch {initial_epoch} ({ckpt.latest})")
            t_fit = time.time()
            try:
                model.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=initial_epoch,
                          steps_per_epoch=steps_per_epoch,
                          callbacks=callbacks, verbose=verbose, shuffle=False)
            except cb.NonFiniteLossError as e:
                if ckpt.latest:
                    hint = f"Resume with: tfp-glow train --resume --run-dir {run_dir} (optionally with a lower --lr)."
                else:
                    hint = "Start again with a lower --lr."
                print(f"error: {e} {hint}", file=sys.stderr, flush=True)
                raise SystemExit(1)
            _say(f"training took {time.time() - t_fit:.1f} s")

        # -------------------------------------------------------------------- the end
        result = _evaluate(model, test_x, runs.EVAL_BATCH_SIZE)
        test_bpd = _print_eval("test", result, image)
        written = []
        if chief:
            model.save_weights(paths["weights"])
            written.append(paths["weights"])
            if image:
                plots.save_image_grid(paths["samples_final"],
                                      model.sample_images(args.n_samples, args.temperature, seed=args.seed))
                written.append(paths["samples_final"])
            elif event_shape == (2,):
                samples = model.sample(2000, temperature=args.temperature, seed=args.seed)
                plots.plot_samples_2d(samples, paths["samples_final"], title=f"{flow} samples (T={args.temperature:g})")
                written.append(paths["samples_final"])
                plots.plot_density_2d(model, np.asarray(test_x), paths["density"], temperature=1.0,
                                      seed=args.seed, title=f"{flow} on {data_name}")
                written.append(paths["density"])
            if os.path.isfile(paths["metrics"]):
                plots.plot_curves(paths["metrics"], paths["curves"],
                                  metric="bits_per_dim" if image else "nll")
                written.append(paths["curves"])
            if ckpt.latest:
                written.append(ckpt.latest)
            _say("wrote:")
            for p in written:
                _say(f"  {p}")
        _say(f"done in {time.time() - t_start:.1f} s")
        return test_bpd
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


# ------------------------------------------------------------------------ other commands
def _load(run_dir):
    from tfp_glow import runs

    try:
        return runs.load_run(run_dir, return_config=True)
    except (runs.RunError, ValueError, FileNotFoundError) as e:
        raise CLIError(str(e)) from e


def _sample(args):
    import keras

    from tfp_glow import plots

    model, config = _load(args.run_dir)
    keras.utils.set_random_seed(args.seed)
    out = args.out or os.path.join(args.run_dir, f"samples_t{args.temperature:g}_seed{args.seed}.png")
    if model.is_image:
        images = model.sample_images(args.n, args.temperature, seed=args.seed)
        plots.save_image_grid(out, images, scale=args.scale, cols=args.cols)
    elif tuple(model.event_shape) == (2,):
        samples = model.sample(args.n, temperature=args.temperature, seed=args.seed)
        plots.plot_samples_2d(samples, out, title=f"{config['flow_config']['flow']} samples (T={args.temperature:g})")
    else:
        raise CLIError(f"cannot draw samples of event shape {list(model.event_shape)}; sample works for images "
                       f"and 2-D vectors.")
    _say(f"wrote {out}")
    return out


def _evaluate_cmd(args):
    import keras

    from tfp_glow import runs

    model, config = _load(args.run_dir)
    data_name = args.data or config["data"]
    try:
        x, info = load_split(data_name, args.split, config.get("val_fraction", DEFAULT_VAL_FRACTION),
                             config.get("test_fraction", DEFAULT_TEST_FRACTION), args.data_dir)
        _check_first_batch(model, x, args.split)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        raise CLIError(str(e)) from e
    model.compile(keras.optimizers.Adam(), jit_compile=False if args.no_xla else "auto")
    result = _evaluate(model, x, config.get("eval_batch_size", runs.EVAL_BATCH_SIZE))
    _say(f"{args.split} examples: {_num_examples(x)} of {data_name}")
    return _print_eval(args.split, result, model.is_image)


def _export(args):
    try:
        from tfp_glow.export import export_saved_model
    except ModuleNotFoundError as e:
        if e.name and (e.name == "tfp_glow.export" or e.name.startswith("tfp_glow.export")):
            raise CLIError("export is not available in this installation: the module tfp_glow.export "
                           "(export_saved_model) is missing.") from e
        raise
    model, _ = _load(args.run_dir)
    signatures = None if args.signatures is None else [n.strip() for n in args.signatures.split(",") if n.strip()]
    try:
        export_saved_model(model, args.path, signatures=signatures)
    except (ValueError, FileExistsError) as e:
        raise CLIError(str(e)) from e
    _say(f"wrote {args.path}")
    return args.path


def _bench(argv):
    try:
        from tfp_glow import bench
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("tfp_glow.bench"):
            raise CLIError("bench is not available in this installation: the module tfp_glow.bench is missing.") from e
        raise
    return bench.main(list(argv))


# --------------------------------------------------------------------------------- main
def main(argv=None):
    """Entry point of `tfp-glow`; returns 0 on success, raises `SystemExit` on errors."""
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    parser = build_parser()
    try:
        if argv and argv[0] == "bench":
            rc = _bench(argv[1:])
            return rc if isinstance(rc, int) else 0
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        if args.command == "train":
            _train(args)
        elif args.command == "sample":
            _sample(args)
        elif args.command == "evaluate":
            _evaluate_cmd(args)
        elif args.command == "export":
            _export(args)
        return 0
    except CLIError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The options of `tfp-glow train`: the data, the fit, the model, the samples and the execution,
one function each, and the help texts they share with `evaluate` (`DATA_HELP`,
`DEFAULTS_HELP`). Standard library only: `tfp-glow --help` builds the parser without
TensorFlow. The defaults that depend on the data live in `tfp_glow.recipes` (the options
default to `None`, "not given"); the parser repeats those values and choices
(tests/cli/test_startup.py, tests/test_recipes.py check them).
"""
import argparse

from tfp_glow.cli.arg_types import (HelpFormatter, ema_decay, fraction, hidden_sizes, n_bits, non_negative_float,
                                    non_negative_int, positive_float, positive_int, spline_bins)

__all__ = ["add_train_command", "FLOW_CHOICES", "STRATEGIES", "POLICIES", "DEFAULT_VAL_FRACTION",
           "DEFAULT_TEST_FRACTION", "DATA_HELP", "DEFAULTS_HELP"]

FLOW_CHOICES = ("glow", "realnvp", "nice", "nsf", "maf", "tarflow")  # tfp_glow.models.FLOWS
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
  tarflow:         images: 4 transformer autoregressive blocks of 4 layers, width 128, patch 4
                   (8x8 digits: 2 layers, width 64, patch 2), the reference's MNIST configuration
"""


def add_train_command(sub):
    """`tfp-glow train` and its option groups; returns its parser."""
    t = sub.add_parser(
        "train", help="train a flow and write a run directory (checkpoints, samples, metrics)",
        formatter_class=HelpFormatter,
        description="Train a flow with Keras fit on tf.data, with progress bars and per-epoch validation\n"
                    "nll and bits/dim. Writes into the run directory: config.json, checkpoints/ (every\n"
                    "good epoch), metrics.csv, logs/ (TensorBoard), samples_epochNNN.png, and at the end\n"
                    "samples_final.png, curves.png, model.weights.h5 (and density.png for 2-D data).\n"
                    "Prints the test bits/dim (fixed dequantization noise).",
        epilog=DATA_HELP + "\n" + DEFAULTS_HELP)
    _data_options(t)
    _fit_options(t)
    _model_options(t)
    _output_options(t)
    _execution_options(t)
    return t


def _data_options(t):
    """The flow family, the data source and how it is read, the run directory."""
    t.add_argument("--flow", choices=FLOW_CHOICES, default=None,
                   help="flow family (default: glow for images, realnvp for vectors); nsf (neural spline "
                        "flow) and maf (masked autoregressive flow) flatten images to vectors")
    t.add_argument("--data", default=None,
                   help="data source, see below (default: digits; with --resume: the run's data, found from any "
                        "folder; --data PATH points a run whose .npz or image folder moved at it, once its "
                        "shape and bit depth are checked)")
    t.add_argument("--data-dir", default=None, help="TensorFlow Datasets data directory (tfds sources)")
    t.add_argument("--image-size", type=positive_int, nargs=2, metavar=("H", "W"), default=None,
                   help="image folders: resize every image to H x W (bilinear); without it all must share one size")
    t.add_argument("--grayscale", action="store_true",
                   help="image folders: read the images as one channel (BT.601 luma) instead of RGB")
    t.add_argument("--run-dir", default=None, help="output directory (default: runs/<flow>-<data>, with -variational and -conditional for "
                        "those recipes)")


def _fit_options(t):
    """Epochs, batches, the optimizer's schedule, the bit depth and the held-out fractions."""
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
    t.add_argument("--noise-sigma", type=non_negative_float, default=None,
                   help="images: train on Gaussian-noised batches with this sigma (TarFlow's generation mode, "
                        "e.g. 0.05); samples are denoised with one score step, and the figures stay the "
                        "clean uniform-dequantization bound (default 0: off; with --resume: the run's)")
    t.add_argument("--label-dropout", type=non_negative_float, default=None,
                   help="--conditional: the share of training labels replaced by the mean class, so guided "
                        "sampling (sample --guidance) has an unconditional model to extrapolate from "
                        "(default: 0.1 for tarflow, as TarFlow's reference; 0 for the others; with --resume: "
                        "the run's)")
    t.add_argument("--dequantization", choices=("uniform", "variational"), default=None,
                   help="images: uniform noise, or a learned q(u|x) trained jointly (Flow++); the figures are "
                        "then the variational bound (default: uniform; with --resume: the run's)")
    t.add_argument("--val-fraction", type=fraction, default=DEFAULT_VAL_FRACTION,
                   help="fraction held out for validation (npz/folder/tfds without a validation split)")
    t.add_argument("--test-fraction", type=fraction, default=DEFAULT_TEST_FRACTION,
                   help="fraction held out for testing (npz/folder without a test split)")


def _model_options(t):
    """The model options; each defaults per data kind (`tfp_glow.recipes`)."""
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
    m.add_argument("--patch-size", type=positive_int, default=None,
                   help="tarflow: side p of the patch tokens, dividing H and W (default 4; 2 on 8x8)")
    m.add_argument("--blocks", type=positive_int, default=None,
                   help="tarflow: autoregressive blocks, token order flipped between them (default 4)")
    m.add_argument("--layers-per-block", type=positive_int, default=None,
                   help="tarflow: transformer layers per block (default 4; 2 on 8x8); --hidden is its width "
                        "(default 128; 64 on 8x8), 64 per attention head")


def _output_options(t):
    """The sample grids written while and after training."""
    o = t.add_argument_group("sampling and output")
    o.add_argument("--temperature", type=positive_float, default=0.7,
                   help="sampling temperature of samples_final.png and the per-epoch samples")
    o.add_argument("--n-samples", type=positive_int, default=64, help="samples per grid")
    o.add_argument("--sample-every", type=positive_int, default=None,
                   help="write samples_epochNNN.png every this many epochs (default: 1 for images, "
                        "epochs/6 for 2-D data)")


def _execution_options(t):
    """Seed, what to do with an existing run, XLA, distribution, precision, verbosity, conditioning."""
    r = t.add_argument_group("execution")
    r.add_argument("--seed", type=int, default=0, help="random seed (keras.utils.set_random_seed)")
    r.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --run-dir: removes only the files a run writes "
                        "(config.json, checkpoints, metrics.csv, TensorBoard events, samples, weights); "
                        "without it, an existing run is an error")
    r.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir from its latest checkpoint (model, optimizer, "
                        "epoch); model options come from its config.json")
    r.add_argument("--time-limit", type=positive_float, default=None, metavar="SECONDS",
                   help="stop at the end of the last epoch that fits in SECONDS of training (a whole "
                        "checkpoint: --resume continues from it); not recorded in the run (default: none)")
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
                        "classifier argmax_y log p(x|y) + log p(y) (default run dir: runs/<flow>-<data>[-variational]-conditional)")

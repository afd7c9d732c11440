"""`tfp-glow bench`'s speed options (`build_parser`), standard library only, so that
`tfp-glow bench --help` answers without importing TensorFlow (`cli` parses, `run` measures)."""
import argparse

from tfp_glow.bench.config import MIXED_CHOICES, RECOMPUTE_CHOICES, TABLE_SIZES, TABLE_STEPS

__all__ = ["build_parser"]


def build_parser(prog="tfp-glow bench"):
    """The speed bench's argparse parser (`--quality` only marks the hand-over to `quality`)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Benchmark our Glow against TFP's tfb.Glow with the identical architecture: parameter "
                    "counts, train-step / log_prob / sampling images per second, first-step (trace + compile) "
                    "time, peak memory, and achieved GFLOP/s against a matmul peak measured in the same run.",
        epilog="Examples:\n"
               "  tfp-glow bench                                  # default: L=2 K=4 hidden 400 28x28x1 batch 64\n"
               "  tfp-glow bench --only ours --steps 8 --iters 5\n"
               "  tfp-glow bench --scaling-table --table-steps 4,8 --table-sizes 28,32\n"
               "  tfp-glow bench --quality --data digits28 --budget 60   # quality per wall clock vs normflows\n"
               "Measured figures depend on the machine and its load: run on an otherwise idle machine.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument_group("architecture (identical for both models)")
    a.add_argument("--levels", type=int, default=2, help="L, number of levels/squeezes (default 2)")
    a.add_argument("--steps", type=int, default=4, help="K, flow steps per level (default 4)")
    a.add_argument("--hidden", type=int, default=400, help="coupling network width (default 400)")
    a.add_argument("--coupling", choices=("affine", "additive"), default="affine", help="coupling type (default affine)")
    a.add_argument("--image-size", type=int, default=28, help="square image side, divisible by 2^L (default 28)")
    a.add_argument("--channels", type=int, default=1, help="image channels (default 1)")
    a.add_argument("--n-bits", type=int, default=8, choices=range(1, 9), metavar="{1..8}",
                   help="bit depth of the dequantized data (default 8)")
    r = p.add_argument_group("run")
    r.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    r.add_argument("--iters", type=int, default=None,
                   help="timed steps per model and metric (default 10; 3 per cell of --scaling-table)")
    r.add_argument("--warmup", type=int, default=None,
                   help="untimed steps after the first one (default 2; 1 per cell of --scaling-table)")
    r.add_argument("--xla", choices=("auto", "on", "off"), default="auto",
                   help="XLA (jit_compile) for our model: auto = FlowModel.compile's own default")
    r.add_argument("--no-xla", action="store_true", help="same as --xla off")
    r.add_argument("--tfp-xla", choices=("on", "off"), default="off",
                   help="XLA for tfb.Glow's step (default off: XLA makes tfb.Glow slower and much slower to "
                        "compile on CPU)")
    r.add_argument("--mixed-precision", choices=MIXED_CHOICES, default="none",
                   help="Keras mixed-precision policy for our conditioner networks (TFP stays float32)")
    r.add_argument("--recompute", choices=RECOMPUTE_CHOICES, default="none",
                   help="gradient recomputation (tf.recompute_grad) for our model, per flow step or per level")
    r.add_argument("--only", choices=("ours", "tfp"), default=None, help="measure one model only")
    r.add_argument("--rss", action="store_true",
                   help="also measure peak RSS growth of each model in a fresh subprocess (slower)")
    r.add_argument("--no-floor", action="store_true", help="skip the convolutions-alone measurement")
    r.add_argument("--no-matmul", action="store_true", help="skip the matmul peak measurement")
    r.add_argument("--profile", metavar="DIR", default=None,
                   help="also trace a few train steps of each model with the TF profiler into DIR and print "
                        "the top ops by time")
    r.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON")
    t = p.add_argument_group("scaling table (ours only; one fresh subprocess per cell)")
    t.add_argument("--scaling-table", action="store_true",
                   help="throughput and peak memory for K x image size, with and without recomputation")
    t.add_argument("--table-steps", default=",".join(map(str, TABLE_STEPS)), help="K values (default 4,8,16,32)")
    t.add_argument("--table-sizes", default=",".join(map(str, TABLE_SIZES)), help="image sizes (default 28,32,64)")
    t.add_argument("--table-recompute", default="none,step",
                   help="recompute modes, comma-separated from none,step,level (default none,step)")
    t.add_argument("--table-out", default="bench_scaling.json",
                   help="JSON file of finished cells; existing cells are skipped (default bench_scaling.json)")
    t.add_argument("--table-redo", action="store_true", help="re-run cells already in --table-out")
    t.add_argument("--cell-timeout", type=int, default=600, help="seconds per cell / subprocess (default 600)")
    q = p.add_argument_group("quality per wall clock (tfp_glow.bench.quality)")
    q.add_argument("--quality", action="store_true",
                   help="instead: train our Glow and PyTorch normflows' Glow for the same wall-clock budget and "
                        "compare test bits/dim, img/s and sample finiteness; its own options follow "
                        "(tfp-glow bench --quality --help)")
    p.add_argument("--input-check-cost", action="store_true",
                   help="instead: what the in-graph input check of float batches costs our train step (two "
                        "copies of our Glow, with and without it, alternating)")
    p.add_argument("--tarflow-reference", metavar="PATH", default=None,
                   help="instead: our TarFlow against apple/ml-tarflow's Model (its transformer_flow.py at PATH; "
                        "needs torch): train-step img/s and sampling time (tfp-glow bench --tarflow-reference X "
                        "--help)")
    p.add_argument("--_cell", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_rss-child", choices=("ours", "tfp"), default=None, help=argparse.SUPPRESS)
    return p

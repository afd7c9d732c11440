"""`tfp-glow bench` and `python -m tfp_glow.bench`: the options (`build_parser`) and `main`.

Without `--quality`: our Glow against TFP's `tfb.Glow` (`speed`, printed by `report`; `--rss`
in `rss`, `--profile` in `profile`), or with `--scaling-table` our model alone over depth x
image size (`scaling`). With `--quality`, the rest of the command line goes to
`quality.main`: our Glow against PyTorch normflows' Glow, trained for the same wall-clock
budget, compared on test bits/dim, img/s, non-finite steps and sample finiteness
(`tfp-glow bench --quality --help`).

The private options `--_cell` and `--_rss-child` make this process one cell of the scaling
table or one model's RSS measurement: the bench's child processes enter here, as a user does.
"""
import argparse
import json
import os
import sys

import tensorflow as tf

from tfp_glow.bench import profile, quality, report, rss, scaling, speed
from tfp_glow.bench.config import (MIXED_CHOICES, RECOMPUTE_CHOICES, TABLE_SIZES, TABLE_STEPS, BenchError,
                                    check_config)


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
    p.add_argument("--tarflow-reference", metavar="PATH", default=None,
                   help="instead: our TarFlow against apple/ml-tarflow's Model (its transformer_flow.py at PATH; "
                        "needs torch): train-step img/s and sampling time (tfp-glow bench --tarflow-reference X "
                        "--help)")
    p.add_argument("--_cell", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_rss-child", choices=("ours", "tfp"), default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None):
    """Entry point of `tfp-glow bench` / `python -m tfp_glow.bench`; returns an exit code.

    With `--quality`, the rest of the command line goes to `tfp_glow.bench.quality.main`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--tarflow-reference" or a.startswith("--tarflow-reference=") for a in argv):
        try:
            from tfp_glow.bench import tarflow_speed  # imports torch: only when asked
        except ImportError as e:
            print(f"tfp-glow bench: error: --tarflow-reference needs PyTorch ({e}); "
                  f"pip install \"tfp_glow[bench]\".", file=sys.stderr)
            return 2
        return tarflow_speed.main(argv)
    if "--quality" in argv:
        return quality.main([a for a in argv if a != "--quality"])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _main(args)
    except BenchError as e:
        print(f"tfp-glow bench: error: {e}", file=sys.stderr)
        return 2


def _main(args):
    """Check the options, then run what they ask for; raises `BenchError` for impossible ones."""
    if args.scaling_table:
        if args.only == "tfp":
            raise BenchError("--scaling-table measures our model only; drop --only tfp.")
        args.iters = 3 if args.iters is None else args.iters
        args.warmup = 1 if args.warmup is None else args.warmup
        check_config(argparse.Namespace(**{**vars(args), "batch": 1, "image_size": 2 ** args.levels}), ())
        scaling.scaling_table(args)
        return 0
    args.iters = 10 if args.iters is None else args.iters
    args.warmup = 2 if args.warmup is None else args.warmup
    which = [args.only] if args.only else ["ours", "tfp"]
    check_config(args, which)  # before building anything: bad input fails fast
    if args.recompute != "none" and not speed.recompute_supported():
        print(f"note: --recompute {args.recompute} is unsupported: our FlowModel has no recompute argument yet; "
              "measuring without recomputation.")
        args.recompute = "none"
        check_config(args, which)
    if args._cell:
        scaling.cell_child(args)
        return 0
    if args._rss_child:
        rss.rss_child(args, args._rss_child)
        return 0
    _speed(args, which)
    return 0


def _speed(args, which):
    """Ours against `tfb.Glow` (the models in `which`): measure, print the report, write `--json`."""
    if tf.config.list_physical_devices("GPU"):
        print("note: a GPU is visible; this benchmark was designed for CPU.")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"tfp-glow bench: {len(os.sched_getaffinity(0))} CPU cores, TensorFlow {tf.__version__}, "
          f"load average {load} at start", flush=True)
    peak = None if args.no_matmul else speed.matmul_peak()
    if peak:
        print(f"  matmul peak: {peak:.1f} GFLOP/s", flush=True)
    res = speed.measure(args, which)
    floor = None if args.no_floor else {"xla": speed.conv_floor(args, jit=True),
                                        "tf": speed.conv_floor(args, jit=False)}
    rss_figures = {k: rss.rss_subprocess(args, k) for k in which} if args.rss else None
    report.print_report(args, res, which, peak, floor, rss_figures)
    if args.profile:
        profile.print_profiles(args, which)
    print("  load average at end: " + ", ".join(f"{v:.1f}" for v in os.getloadavg())
          + " (other processes on the machine slow both models alike, since steps alternate)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items() if not k.startswith("_")}, "results": res,
                       "matmul_gflops": peak, "conv_floor_img_s": floor, "rss": rss_figures}, f, indent=1,
                      default=str)

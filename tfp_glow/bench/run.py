"""What `tfp-glow bench` runs once `cli` has parsed its options: the speed comparison with
`tfb.Glow` (`speed`, printed by `report`; `--rss`, `--profile`) or the scaling table."""
import argparse
import json
import os

import tensorflow as tf

from tfp_glow.bench import input_check_cost, profile, report, rss, scaling, speed
from tfp_glow.bench.config import BenchError, check_config

__all__ = ["run"]


def run(args):
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
    if args.input_check_cost:
        input_check_cost.measure(args)
        return 0
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

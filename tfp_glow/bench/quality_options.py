"""`tfp-glow bench --quality`'s parser and constants, standard library only, so that
`tfp-glow bench --quality --help` answers without importing TensorFlow. `quality_config`
checks and completes what it parses."""
import argparse

PROG = "tfp-glow bench --quality"
SIDES = ("ours", "normflows")
DATA_SHAPES = {"digits28": (28, 28, 1), "photos32": (32, 32, 3)}
JSON_TAG = "QUALITY_JSON "  # how a child process prints its results dict, on one line


def _clip_arg(text):
    if str(text).strip().lower() in ("none", "off", "0", "0.0"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0 or 'none'; received {text!r}") from None


def build_parser(prog=PROG):
    """The argparse parser of `tfp-glow bench --quality` (and of its child processes, `--child`)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Quality per wall clock: our Glow (Keras fit) against PyTorch normflows' Glow with the "
                    "same architecture, data, optimizer and budget. Each side trains in its own subprocess for "
                    "--budget seconds; the table shows test bits/dim (fixed dequantization noise), img/s, steps, "
                    "non-finite steps skipped, first-step time, finite samples at T=1.0 and 0.7 and parameter "
                    "counts. Writes results.json and bits_per_dim_vs_time.png into --out.",
        epilog="Examples:\n"
               "  tfp-glow bench --quality --data digits28 --budget 60\n"
               "  tfp-glow bench --quality --data photos32 --budget 600 --warmup-steps 200 --clip-norm 50\n"
               "  tfp-glow bench --quality --which ours --budget 30\n"
               "  tfp-glow bench --quality --flow tarflow --data photos32 --budget 600\n"
               "Defaults of the architecture and training are the CLI's (tfp_glow.recipes). "
               "The normflows side needs torch and normflows: pip install \"tfp_glow[bench]\".",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits28", help=f"image set: {', '.join(DATA_SHAPES)} (default digits28)")
    p.add_argument("--budget", default="600",
                   help="training seconds per side, or several comma-separated (300,600,1800): one run to the "
                        "largest, test bits/dim measured at each (default 600)")
    p.add_argument("--step-budget", default=None,
                   help="instead of seconds: optimizer steps, one or several comma-separated (500,1000,2000), "
                        "for equal-step curves")
    p.add_argument("--seeds", type=int, default=1,
                   help="repeat every side with this many seeds (--seed, --seed + 1, ...); the table gives "
                        "the mean and spread (default 1)")
    a = p.add_argument_group("architecture (default: the recipe for --data)")
    a.add_argument("--levels", type=int, default=None, help="L, levels/squeezes")
    a.add_argument("--steps", type=int, default=None, help="K, flow steps per level")
    a.add_argument("--hidden", type=int, default=None, help="coupling network width")
    t = p.add_argument_group("training (default: the recipe for --data)")
    t.add_argument("--batch-size", type=int, default=None, help="batch size")
    t.add_argument("--lr", type=float, default=None, help="Adam learning rate")
    t.add_argument("--warmup-steps", type=int, default=None, help="linear learning-rate warmup steps (0: none)")
    t.add_argument("--clip-norm", type=_clip_arg, default=argparse.SUPPRESS,
                   help="global gradient-norm clip, or 'none' for no clipping")
    t.add_argument("--seed", type=int, default=0, help="seed of both sides (default 0)")
    r = p.add_argument_group("run")
    r.add_argument("--which", default=",".join(SIDES), help="sides to run, comma-separated (default ours,normflows)")
    r.add_argument("--flow", choices=("glow", "tarflow"), default="glow",
                   help="tarflow: also run our TarFlow with the CLI's recipe (`tfp-glow train --flow tarflow`) as "
                        "variant `tarflow`, against our Glow and the peer in the same run (default glow: no TarFlow)")
    r.add_argument("--ours", action="append", default=None, metavar="NAME:KEY=VALUE,...",
                   help="a variant of our side for an ablation, repeatable: e.g. --ours base: --ours "
                        "smin0:scale_min=0 --ours ema:ema=0.999 (keys: tfp_glow.bench.quality_variants.OURS_OPTIONS). "
                        "Default: one variant, ours, with the recipe's settings")
    r.add_argument("--curve-every", type=int, default=10, help="steps between curve points (default 10)")
    r.add_argument("--out", default="bench_quality", help="output directory (default bench_quality/)")
    r.add_argument("--torch-threads", type=int, default=None,
                   help="torch intra-op threads of the normflows side (default: all CPU cores, os.cpu_count()); "
                        "on a machine other processes load, 1 can be several times faster")
    p.add_argument("--child", choices=SIDES, default=None, help=argparse.SUPPRESS)
    return p

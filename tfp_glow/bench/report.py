"""The speed bench's report: the side-by-side table of ours and `tfb.Glow` (`print_report`)."""
from tfp_glow.bench.config import train_flops_per_image


def _mb(b):
    return "n/a" if b is None else f"{b / 2**20:,.0f} MB"


def _ratio(a, b):
    return "" if not a or not b else f"{a / b:.2f}x"


def print_report(args, res, which, peak_gflops, floor, rss):
    """Print the configuration, then a row per metric and a column per model in `which`.

    `res` is `speed.measure`'s dict, `peak_gflops` the matmul peak (or None), `floor` the
    convolutions-alone rates `{"xla": ..., "tf": ...}` (or None), `rss` the `rss.rss_subprocess`
    figures per model (or None).
    """
    flops = train_flops_per_image(args.image_size, args.channels, args.levels, args.steps, args.hidden,
                                  args.coupling)
    print()
    print(f"Glow {args.image_size}x{args.image_size}x{args.channels}, L={args.levels} K={args.steps} "
          f"hidden={args.hidden} {args.coupling}, batch {args.batch}, {args.iters} timed steps after "
          f"{args.warmup} warm-up, alternating")
    xla_ours = "on" if res.get("ours_xla") else "off"
    if "ours" in which and not args.no_xla and args.xla == "auto":
        xla_ours += " (FlowModel.compile's auto)"
    print(f"  ours: Keras FlowModel train function, XLA {xla_ours}, precision "
          f"{args.mixed_precision}, recompute {args.recompute}")
    if "tfp" in which:
        print(f"  tfp:  tfb.Glow, tf.function GradientTape step, XLA {args.tfp_xla}, float32")
    if "ours" in which and "tfp" in which:
        a, b = res["ours_params"], res["tfp_params"]
        print(f"  parameters: ours {a:,} | tfb.Glow {b:,} | difference {100 * abs(a - b) / b:.2f}%"
              + ("" if abs(a - b) <= 0.01 * b else "  (MORE THAN 1% APART)"))
    else:
        print(f"  parameters: {which[0]} {res[which[0] + '_params']:,}")
    if peak_gflops:
        print(f"  matmul peak (float32 2048x2048, this run): {peak_gflops:.1f} GFLOP/s")
    print(f"  convolution FLOP per training image (forward x3): {flops['train'] / 1e9:.3f} GFLOP"
          + (f" -> ceiling {peak_gflops * 1e9 / flops['train']:.1f} img/s at the matmul peak" if peak_gflops else ""))
    print()
    cols = [k for k in ("ours", "tfp") if k in which]
    head = f"{'metric':34s}" + "".join(f"{('ours' if c == 'ours' else 'tfb.Glow'):>16s}" for c in cols)
    if len(cols) == 2:
        head += f"{'ours/TFP':>10s}"
    print(head)
    print("-" * len(head))

    def row(label, vals, fmt, ratio=True, invert=False):
        line = f"{label:34s}" + "".join(f"{fmt(v):>16s}" for v in vals)
        if len(vals) == 2 and ratio:
            line += f"{_ratio(vals[1], vals[0]) if invert else _ratio(vals[0], vals[1]):>10s}"
        print(line)

    tr = [res[f"{c}_train"] for c in cols]
    row("train step img/s (median)", [t["median"] for t in tr], lambda v: f"{v:.1f}")
    row("  range over timed steps", [(t["min"], t["max"]) for t in tr], lambda v: f"{v[0]:.1f}-{v[1]:.1f}",
        ratio=False)
    row("  achieved GFLOP/s (convs)", [t["median"] * flops["train"] / 1e9 for t in tr], lambda v: f"{v:.1f}")
    if peak_gflops:
        row("  % of matmul peak", [100 * t["median"] * flops["train"] / 1e9 / peak_gflops for t in tr],
            lambda v: f"{v:.0f}%", ratio=False)
    row("log_prob img/s (median)", [res[f"{c}_log_prob"]["median"] for c in cols], lambda v: f"{v:.1f}")
    row("sampling img/s (median)", [res[f"{c}_sample"]["median"] for c in cols], lambda v: f"{v:.1f}")
    row("build + actnorm init + compile(), s", [res[f"{c}_build_s"] for c in cols], lambda v: f"{v:.1f}")
    row("first train step, s", [res[f"{c}_first_step_s"] for c in cols], lambda v: f"{v:.1f}")
    row("first log_prob / sample call, s", [(res[f"{c}_log_prob_first_s"], res[f"{c}_sample_first_s"]) for c in cols],
        lambda v: f"{v[0]:.1f} / {v[1]:.1f}", ratio=False)
    row("train step peak, TF allocator", [res[f"{c}_train_peak_bytes"] for c in cols], _mb)
    if rss:
        row("RSS growth: first step (compile)", [rss[c]["first"] for c in cols], _mb)
        row("RSS growth: later train steps", [rss[c]["steady"] for c in cols], _mb)
    if floor:
        print(f"{'convolutions alone img/s, XLA':34s}{floor['xla']:>16.1f}   (the same convs fwd+bwd, nothing else)")
        print(f"{'convolutions alone img/s, TF ops':34s}{floor['tf']:>16.1f}   (no XLA: TF's oneDNN kernels)")
    print()
    print("  ratios are ours/TFP (higher is better for img/s; lower is better for seconds and memory).")
    print("  memory: TF CPU allocator peak during one train step above the memory held before it "
          "(activations, temporaries).")
    if rss:
        print("  RSS growth: fresh process per model, peak resident set above the resident set before the phase "
              f"({rss[cols[0]]['source']}); the first step includes tracing and XLA compilation.")

"""The speed bench's configuration, without TensorFlow: choices, analytic counts, checks.

`check_config` rejects a configuration that cannot run (image size not divisible by `2^L`,
a batch whose activations will not fit in memory, ...) with a `BenchError` that says what to
change, before anything is built; `config_argv` writes a configuration back as the command
line of a child process (`--_cell`, `--_rss-child`).
"""
import os

RECOMPUTE_CHOICES = ("none", "step", "level")
MIXED_CHOICES = ("none", "mixed_bfloat16", "mixed_float16")
TABLE_STEPS = (4, 8, 16, 32)
TABLE_SIZES = (28, 32, 64)


class BenchError(ValueError):
    """An impossible benchmark configuration; the message says what to change."""


# ------------------------------------------------------------------------------ analytics
def level_shapes(image_size, channels, levels):
    """`[(H_l, W_l, C_l)]` of the flow steps at each level: after `l + 1` squeezes and `l`
    splits, `H_l = H / 2^(l+1)` and `C_l = 4 C 2^l`."""
    return [(image_size // 2 ** (l + 1), image_size // 2 ** (l + 1), 4 * channels * 2 ** l) for l in range(levels)]


def train_flops_per_image(image_size, channels, levels, steps, hidden, coupling="affine"):
    """Analytic FLOP of one training image (forward + backward) in Glow's convolutions.

    A convolution with a `k x k` kernel from `Cin` to `Cout` channels on an `H x W` map costs
    `2 H W Cin Cout k^2` FLOP per image forward (multiply + add); backward costs about twice
    that (gradients with respect to inputs and to weights), so training costs `3x` forward.
    Counted per level `l` (`H_l, W_l, C_l` from `level_shapes`), `K` times:
    the coupling network `conv3x3(C_l/2 -> h)`, `conv1x1(h -> h)`, `conv3x3(h -> C_out)` with
    `C_out = C_l` (affine) or `C_l / 2` (additive), and the invertible 1x1 convolution
    (`C_l -> C_l`); once per level below the top, the split prior `conv3x3(C_l/2 -> C_l)`.
    Element-wise work (actnorm, sigmoid, log-dets) and the optimizer are not counted.

    Returns:
      `dict(forward=..., train=...)` in FLOP per image.
    """
    fwd = 0
    for l, (h, w, c) in enumerate(level_shapes(image_size, channels, levels)):
        c_out = c if coupling == "affine" else c // 2
        per_step = 2 * h * w * (9 * (c // 2) * hidden + hidden * hidden + 9 * hidden * c_out + c * c)
        fwd += steps * per_step
        if l + 1 < levels:
            fwd += 2 * h * w * 9 * (c // 2) * c
    return {"forward": fwd, "train": 3 * fwd}


def estimate_train_bytes(image_size, channels, levels, steps, hidden, batch, recompute="none"):
    """Rough activation memory of one training step (bytes), for the "too big" check.

    Per flow step at level `l` the backward pass keeps about `H_l W_l (2 h + 8 C_l)` floats per
    image (two hidden feature maps, a few `C_l`-wide tensors); `x 1.3` covers gradients and
    temporaries alive at the same time (calibrated against the allocator peak of the default
    configuration). With recomputation only each step's (`step`) or level's (`level`) input is
    kept, plus one step's or level's full activations while it is recomputed.
    """
    shapes = level_shapes(image_size, channels, levels)
    full = [h * w * (2 * hidden + 8 * c) for h, w, c in shapes]
    io = [h * w * 2 * c for h, w, c in shapes]
    if recompute == "step":
        floats = sum(steps * a for a in io) + max(full)
    elif recompute == "level":
        floats = sum(io) + max(steps * f for f in full)
    else:
        floats = sum(steps * f for f in full)
    return int(4 * batch * floats * 1.3)


def available_memory_bytes():
    """`MemAvailable` from `/proc/meminfo`, else total physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_config(args, models_running=("ours", "tfp")):
    """Raise `BenchError` for configurations that cannot run; returns the memory estimate."""
    for name in ("levels", "steps", "hidden", "image_size", "channels", "batch"):
        if getattr(args, name) < 1:
            raise BenchError(f"--{name.replace('_', '-')} must be a positive integer; received {getattr(args, name)}.")
    if args.iters < 1 or args.warmup < 0:
        raise BenchError(f"--iters must be >= 1 and --warmup >= 0; received {args.iters} and {args.warmup}.")
    f = 2 ** args.levels
    if args.image_size % f:
        ok = [s for s in range(f, 4 * args.image_size + f, f)]
        near = min(ok, key=lambda s: abs(s - args.image_size))
        raise BenchError(
            f"--image-size {args.image_size} is not divisible by 2^L = {f} (--levels {args.levels} squeezes "
            f"{args.levels} times); use e.g. --image-size {near} or fewer levels.")
    need = estimate_train_bytes(args.image_size, args.channels, args.levels, args.steps, args.hidden,
                                args.batch, args.recompute if "ours" in models_running else "none")
    if "tfp" in models_running:  # TFP has no recomputation
        need = max(need, estimate_train_bytes(args.image_size, args.channels, args.levels, args.steps,
                                              args.hidden, args.batch, "none"))
    avail = available_memory_bytes()
    if need > 0.9 * avail:
        per_image = need / args.batch
        fit = int(0.9 * avail // per_image)
        hint = f"use --batch {fit} or less" if fit >= 1 else "use fewer --steps, --hidden or a smaller --image-size"
        if "ours" in models_running and args.recompute == "none" and "tfp" not in models_running:
            hint += ", or --recompute step"
        raise BenchError(
            f"batch {args.batch} needs about {need / 2**30:.1f} GiB of activations for a training step "
            f"(estimate), but only {avail / 2**30:.1f} GiB of memory is available; {hint}.")
    return need


def int_list(text, opt):
    """The comma-separated positive integers `text` of option `opt`, or a `BenchError`."""
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise BenchError(f"{opt} takes comma-separated integers; received {text!r}.") from None
    if not vals or min(vals) < 1:
        raise BenchError(f"{opt} takes comma-separated positive integers; received {text!r}.")
    return vals


def config_argv(args):
    """The architecture and run options of `args` as command-line arguments, every value explicit."""
    out = ["--levels", str(args.levels), "--steps", str(args.steps), "--hidden", str(args.hidden),
           "--coupling", args.coupling, "--image-size", str(args.image_size), "--channels", str(args.channels),
           "--batch", str(args.batch), "--iters", str(args.iters), "--warmup", str(args.warmup),
           "--recompute", args.recompute, "--mixed-precision", args.mixed_precision, "--n-bits", str(args.n_bits),
           "--tfp-xla", args.tfp_xla, "--xla", args.xla]
    if args.no_xla:
        out.append("--no-xla")
    return out


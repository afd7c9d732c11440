"""`tfp-glow bench`: our Glow against TFP's `tfb.Glow`, same architecture, side by side.

Run `python -m tfp_glow.bench --help` (or `tfp-glow bench --help`). Defaults: L=2 levels,
K=4 steps, 400 hidden channels, affine coupling, 28x28x1 images, batch 64; XLA as
FlowModel.compile chooses (`--xla auto`: off on CPU, where XLA is slower).

What is measured, in one process, after warm-up, alternating one step of ours with one step
of TFP's so both see the same machine load:

- **train step, images/s**: ours is `FlowModel`'s own compiled Keras train function
  (`make_train_function`, what `fit` runs: dequantization noise, `log_prob`, bits/dim loss,
  gradients, Adam, metrics), fed by a `tf.data` iterator. TFP's is a `tf.function`
  `GradientTape` step doing the same math (`baselines_tfp.make_train_step`), because Keras 3
  cannot track `tfb.Glow`'s variables. The figure is `batch / median step time` (robust to
  load spikes from other processes); the min-max range over the timed steps is printed too.
- **log_prob, images/s**: `log p(x)` of a batch with fixed dequantization noise.
- **sampling, images/s**: `distribution.sample(batch)` (ours through `FlowModel.sample`).
- **first train step (s)**: wall time of the first call, i.e. trace + XLA compile + one step.
- **peak memory**: TF's CPU allocator (`tf.config.experimental.get_memory_info('CPU:0')`),
  reset before each timed train step; printed as the peak above what was allocated before the
  step (activations and temporaries of one step; variables and optimizer slots are extra and
  are the same for both). With `--rss`, also the peak resident set size (`ru_maxrss`) of a
  fresh subprocess per model, minus its size before its first step: that includes tracing
  and XLA compilation, which the allocator figure does not.
- **matmul peak and achieved GFLOP/s**: the best of a few runs of chained float32 2048x2048
  matmuls in a `tf.function` (`2 n^3` FLOP each), measured in the same run; the train step's
  achieved rate is `images/s x FLOP per training image` with the analytic count of
  `train_flops_per_image` (convolutions only, forward x 3 for forward + backward).
- **convolutions alone** (`--no-floor` to skip): the same convolution stacks as the coupling
  networks and 1x1 convolutions, as raw `tf.nn.conv2d` / einsum forward + backward with
  nothing else, once under XLA and once with TF's own (oneDNN) kernels: what the convolutions
  cost on this machine, a floor for any Glow implementation here. On the 2-core CPU this was
  written on, XLA's convolutions ran at about half the speed of TF's oneDNN kernels.

`--scaling-table` runs our model alone for K in {4, 8, 16, 32} x image size in {28, 32, 64}
(choose with `--table-steps`/`--table-sizes`) with and without recomputation, one fresh
subprocess per cell, and stores every finished cell in a JSON file (`--table-out`), so an
interrupted table resumes where it stopped.

`--quality` hands the rest of the command line to `tfp_glow.bench.quality`: our Glow against
PyTorch normflows' Glow, trained for the same wall-clock budget, compared on test bits/dim,
img/s, non-finite steps and sample finiteness (`tfp-glow bench --quality --help`).
"""
import argparse
import inspect
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

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


def recompute_supported():
    """Whether our `FlowModel` takes a `recompute` argument (none|step|level)."""
    from tfp_glow.training import FlowModel
    return "recompute" in inspect.signature(FlowModel.__init__).parameters


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


# ------------------------------------------------------------------------------ helpers
def _tf():
    import tensorflow as tf
    return tf


def _sync(x):
    tf = _tf()
    if isinstance(x, dict):
        x = next(iter(x.values()))
    if isinstance(x, tf.Tensor):
        x.numpy()
    return x


def memory_stats_available():
    tf = _tf()
    try:
        tf.config.experimental.reset_memory_stats("CPU:0")
        tf.config.experimental.get_memory_info("CPU:0")
        return True
    except Exception:
        return False


def _timed(fn, mem):
    """Run `fn` once; returns (seconds, peak allocator bytes above the start, or None)."""
    tf = _tf()
    start = None
    if mem:
        tf.config.experimental.reset_memory_stats("CPU:0")
        start = tf.config.experimental.get_memory_info("CPU:0")["current"]
    t = time.perf_counter()
    _sync(fn())
    dt = time.perf_counter() - t
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"] - start if mem else None
    return dt, peak


def matmul_peak(n=2048, chain=8, repeats=4):
    """Best float32 `n x n` matmul rate (GFLOP/s) of `chain` dependent matmuls in a tf.function."""
    tf = _tf()
    a = tf.random.normal([n, n], seed=1)
    b = tf.random.normal([n, n], seed=2) / math.sqrt(n)

    @tf.function
    def mm(a, b):
        c = a
        for _ in range(chain):
            c = tf.matmul(c, b)
        return tf.reduce_sum(c[:1, :1])

    mm(a, b).numpy()
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        mm(a, b).numpy()
        best = max(best, 2.0 * n ** 3 * chain / (time.perf_counter() - t) / 1e9)
    return best


def conv_floor(args, jit=True):
    """A step of just the convolutions of the model (forward + backward), images/s.

    Same stacks as `train_flops_per_image` counts, as raw `tf.nn.conv2d` / matmul on
    `tf.Variable`s; the loss is a plain sum, no flow, no optimizer.
    """
    tf = _tf()
    rng = tf.random.Generator.from_seed(0)
    variables, stacks = [], []
    for l, (h, w, c) in enumerate(level_shapes(args.image_size, args.channels, args.levels)):
        c_out = c if args.coupling == "affine" else c // 2
        for _ in range(args.steps):
            ws = [tf.Variable(rng.normal([3, 3, c // 2, args.hidden]) * 0.05),
                  tf.Variable(rng.normal([1, 1, args.hidden, args.hidden]) * 0.05),
                  tf.Variable(rng.normal([3, 3, args.hidden, c_out]) * 0.05),
                  tf.Variable(rng.normal([c, c]) * 0.05)]
            variables += ws
            stacks.append((l, ws))
    x = tf.random.normal([args.batch, args.image_size // 2, args.image_size // 2, 4 * args.channels])

    @tf.function(jit_compile=jit)
    def step(x):
        with tf.GradientTape() as tape:
            total = 0.0
            hcur = x
            for level in range(args.levels):
                if level:
                    hcur = tf.nn.space_to_depth(hcur[..., : hcur.shape[-1] // 2], 2)
                for l, (w1, w2, w3, w4) in stacks:
                    if l != level:
                        continue
                    hcur = tf.einsum("nhwc,cd->nhwd", hcur, w4)
                    a, _ = tf.split(hcur, 2, axis=-1)
                    y = tf.nn.relu(tf.nn.conv2d(a, w1, 1, "SAME"))
                    y = tf.nn.relu(tf.nn.conv2d(y, w2, 1, "SAME"))
                    y = tf.nn.conv2d(y, w3, 1, "SAME")
                    total += tf.reduce_sum(y)
                    hcur = hcur + 1e-3 * tf.reduce_mean(y)
            loss = total + tf.reduce_sum(hcur)
        grads = tape.gradient(loss, variables)
        return tf.add_n([tf.reduce_sum(g) for g in grads])

    step(x).numpy()
    for _ in range(max(1, args.warmup)):
        step(x).numpy()
    times = []
    for _ in range(args.iters):
        t = time.perf_counter()
        step(x).numpy()
        times.append(time.perf_counter() - t)
    return args.batch / statistics.median(times)


# ------------------------------------------------------------------------------- models
def ours_config(args):
    from tfp_glow.models import FlowConfig
    kwargs = dict(levels=args.levels, steps=args.steps, hidden_channels=args.hidden, coupling=args.coupling)
    return FlowConfig("glow", (args.image_size, args.image_size, args.channels), kwargs)


class Ours:
    """Our `FlowModel` with its compiled Keras train function."""

    name = "ours"

    def __init__(self, args, x):
        import keras
        tf = _tf()
        from tfp_glow.training import FlowModel
        if args.mixed_precision != "none":
            keras.mixed_precision.set_global_policy(args.mixed_precision)
        try:
            extra = {"recompute": args.recompute} if args.recompute != "none" else {}
            self.model = FlowModel(ours_config(args), n_bits=args.n_bits, **extra)
        finally:
            if args.mixed_precision != "none":
                keras.mixed_precision.set_global_policy("float32")
        self.model.initialize(x)
        xla = "off" if args.no_xla else args.xla
        self.model.compile(optimizer=keras.optimizers.Adam(1e-3),
                           jit_compile={"auto": "auto", "on": True, "off": False}[xla])
        self.jit = bool(self.model.jit_compile)
        self.model.make_train_function()
        self.iterator = iter(tf.data.Dataset.from_tensors(x).repeat())
        self.x = tf.constant(x)
        jit = self.jit
        model, batch = self.model, args.batch
        self._log_prob = tf.function(lambda x: model(x), jit_compile=jit)
        self._sample = tf.function(lambda: model.sample(batch), jit_compile=jit)
        self.params = _count(model.distribution)

    def train(self):
        return self.model.train_function(self.iterator)

    def log_prob(self):
        return self._log_prob(self.x)

    def sample(self):
        return self._sample()


class TFPGlow:
    """TFP's `tfb.Glow` with a `GradientTape` step (`tfp_glow.bench.baselines_tfp`)."""

    name = "tfp"

    def __init__(self, args, x):
        tf = _tf()
        from tfp_glow.bench import baselines_tfp as baselines
        self.dist = baselines.tfp_glow((args.image_size, args.image_size, args.channels), args.levels, args.steps,
                                       args.hidden, args.coupling, seed=0)
        baselines.initialize_actnorm(self.dist, x, args.n_bits)
        jit = args.tfp_xla == "on"
        self._train = baselines.make_train_step(self.dist, baselines.make_optimizer(1e-3), args.n_bits, jit)
        self._log_prob = baselines.make_eval_fn(self.dist, args.n_bits, jit_compile=jit)
        dist, batch = self.dist, args.batch
        self._sample = tf.function(lambda: dist.sample(batch), jit_compile=jit)
        self.x = tf.constant(x)
        self.params = baselines.count_parameters(self.dist)

    def train(self):
        return self._train(self.x)

    def log_prob(self):
        return self._log_prob(self.x)

    def sample(self):
        return self._sample()


def _count(distribution):
    from tfp_glow.models import count_parameters
    return count_parameters(distribution)


def _images(args):
    import numpy as np
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (args.batch, args.image_size, args.image_size, args.channels)).astype(np.uint8)


# ---------------------------------------------------------------------------- measuring
def measure(args, which):
    """Build the models in `which`, measure them alternating; returns a results dict."""
    tf = _tf()
    x = _images(args)
    mem = memory_stats_available()
    res = {"memory_source": "tf allocator" if mem else None}
    builders = {"ours": Ours, "tfp": TFPGlow}
    models = {}
    for key in which:
        t = time.perf_counter()
        models[key] = builders[key](args, x)
        res[f"{key}_build_s"] = time.perf_counter() - t
        res[f"{key}_params"] = models[key].params
        res[f"{key}_xla"] = bool(getattr(models[key], "jit", args.tfp_xla == "on"))
        print(f"  built {key}: {models[key].params:,} trainable parameters ({res[f'{key}_build_s']:.1f} s)",
              flush=True)
    for key, m in models.items():  # first train step: trace + compile + run
        dt, _ = _timed(m.train, False)
        res[f"{key}_first_step_s"] = dt
        print(f"  {key}: first train step {dt:.1f} s", flush=True)
    for key, m in models.items():
        for _ in range(args.warmup):
            _sync(m.train())
    times = {k: [] for k in models}
    peaks = {k: [] for k in models}
    for _ in range(args.iters):
        for key, m in models.items():
            dt, peak = _timed(m.train, mem)
            times[key].append(dt)
            peaks[key].append(peak)
    for key in models:
        res[f"{key}_train"] = _rates(args.batch, times[key])
        res[f"{key}_train_peak_bytes"] = max(peaks[key]) if mem else None
    for what in ("log_prob", "sample"):
        for key, m in models.items():
            dt, _ = _timed(getattr(m, what), False)
            res[f"{key}_{what}_first_s"] = dt
            for _ in range(max(1, args.warmup)):
                _sync(getattr(m, what)())
        times = {k: [] for k in models}
        for _ in range(args.iters):
            for key, m in models.items():
                dt, _ = _timed(getattr(m, what), False)
                times[key].append(dt)
        for key in models:
            res[f"{key}_{what}"] = _rates(args.batch, times[key])
    return res


def _rates(batch, times):
    return {"median": batch / statistics.median(times), "min": batch / max(times), "max": batch / min(times),
            "mean": batch * len(times) / sum(times)}


def rss_subprocess(args, which):
    """Peak RSS growth (bytes) of a fresh process running `--iters` train steps of one model."""
    cmd = [sys.executable, "-m", "tfp_glow.bench", "--_rss-child", which, *_config_argv(args)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.cell_timeout)
    for line in out.stdout.splitlines():
        if line.startswith("RSS_JSON "):
            return json.loads(line[9:])
    raise RuntimeError(f"RSS measurement of {which} failed:\n{out.stderr[-2000:]}")


def _proc_status():
    """`(VmRSS, VmHWM)` of this process in bytes from `/proc/self/status` (Linux), else None."""
    try:
        with open("/proc/self/status") as f:
            vals = dict(line.split(":", 1) for line in f if line.startswith(("VmRSS", "VmHWM")))
        return int(vals["VmRSS"].split()[0]) * 1024, int(vals["VmHWM"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def _reset_hwm():
    """Reset the peak-RSS counter (`echo 5 > /proc/self/clear_refs`); True if it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        st = _proc_status()
        return st is not None and st[1] <= st[0] + (1 << 20)
    except OSError:
        return False


def _rss_child(args, which):
    """Peak RSS growth of the first train step (trace + compile + run) and of the later ones.

    After building and initialising the model, the kernel's peak-RSS counter is reset
    (`/proc/self/clear_refs`), so each figure is `VmHWM - VmRSS` over its own phase. Without
    that counter, `ru_maxrss` growth over the whole run is reported for both phases.
    """
    x = _images(args)
    model = {"ours": Ours, "tfp": TFPGlow}[which](args, x)
    out = {}
    for phase, n in (("first", 1), ("steady", max(1, args.iters))):
        if _reset_hwm():
            rss0 = _proc_status()[0]
            for _ in range(n):
                _sync(model.train())
            out[phase] = _proc_status()[1] - rss0
            out["source"] = "VmHWM"
        else:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            for _ in range(n):
                _sync(model.train())
            out[phase] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
            out["source"] = "ru_maxrss"
    print("RSS_JSON " + json.dumps(out), flush=True)


def _config_argv(args):
    out = ["--levels", str(args.levels), "--steps", str(args.steps), "--hidden", str(args.hidden),
           "--coupling", args.coupling, "--image-size", str(args.image_size), "--channels", str(args.channels),
           "--batch", str(args.batch), "--iters", str(args.iters), "--warmup", str(args.warmup),
           "--recompute", args.recompute, "--mixed-precision", args.mixed_precision, "--n-bits", str(args.n_bits),
           "--tfp-xla", args.tfp_xla, "--xla", args.xla]
    if args.no_xla:
        out.append("--no-xla")
    return out


# ------------------------------------------------------------------------------ profile
_WRAPPERS = ("ExecutorState::", "ThunkExecutor::", "CpuExecutable::", "BlockUntilReady", "SlinkyThreadPool::",
             "ThreadpoolListener::", "ExecutorDoneCallback", "Iterator::", "PrefetchProduce", "PrefetchConsume",
             "IteratorGetNextOp", "MakeIterator", "optional:", "EagerExecute", "KernelAndDeviceFunc")


def profile_top_ops(fn, steps, logdir, top=12):
    """Trace `steps` calls of `fn` with the TF profiler; returns `(rows, seconds)`.

    `rows` are `(op, milliseconds, share)` summed over the compute threads' events of the trace
    (`tf_Compute*` executor threads and `tf_numa*` Eigen threads, where XLA's CPU thunks run),
    grouped by TF op type (the part after `:` of a TF op event) or by XLA HLO op (`dot.152` ->
    `dot`); executor and thread-pool wrapper events are left out. Sums over threads can exceed
    wall time (two cores work in parallel).
    """
    import collections
    import glob
    import re
    tf = _tf()
    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError:  # pragma: no cover - other TF layouts
        from tsl.profiler.protobuf import xplane_pb2
    os.makedirs(logdir, exist_ok=True)
    before = set(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))
    tf.profiler.experimental.start(logdir)
    t = time.perf_counter()
    for _ in range(steps):
        _sync(fn())
    seconds = time.perf_counter() - t
    tf.profiler.experimental.stop()
    new = sorted(set(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)) - before)
    if not new:
        return [], seconds
    space = xplane_pb2.XSpace()
    with open(new[-1], "rb") as f:
        space.ParseFromString(f.read())
    total = collections.Counter()
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith(("tf_Compute", "tf_numa")):
                continue
            for ev in line.events:
                name = names.get(ev.metadata_id, "?")
                if name.startswith(_WRAPPERS):
                    continue
                key = name.rsplit(":", 1)[-1] if ":" in name else re.sub(r"\.\d+$", "", name)
                total[key] += ev.duration_ps / 1e9
    grand = sum(total.values()) or 1.0
    return [(k, v, v / grand) for k, v in total.most_common(top)], seconds


# ------------------------------------------------------------------------------ printing
def _mb(b):
    return "n/a" if b is None else f"{b / 2**20:,.0f} MB"


def _ratio(a, b):
    return "" if not a or not b else f"{a / b:.2f}x"


def print_report(args, res, which, peak_gflops, floor, rss):
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


def print_profiles(args, which):
    """Profile `--iters` (at most 3) train steps of each model in a fresh build and print the top ops."""
    x = _images(args)
    for key in which:
        model = {"ours": Ours, "tfp": TFPGlow}[key](args, x)
        for _ in range(2):
            _sync(model.train())
        rows, seconds = profile_top_ops(model.train, min(3, args.iters), os.path.join(args.profile, key))
        n = min(3, args.iters)
        print(f"\nprofile of {key}: {n} train steps, {seconds / n:.2f} s per step; top ops by summed thread time "
              f"(trace in {os.path.join(args.profile, key)})")
        for op, ms, share in rows:
            print(f"  {op[:60]:60s}{ms:10.0f} ms {100 * share:5.1f}%")


# ------------------------------------------------------------------------- scaling table
def scaling_table(args):
    rec_modes = [r for r in args.table_recompute.split(",") if r]
    for r in rec_modes:
        if r not in RECOMPUTE_CHOICES:
            raise BenchError(f"--table-recompute: unknown mode {r!r}; choose from {', '.join(RECOMPUTE_CHOICES)}.")
    steps = _int_list(args.table_steps, "--table-steps")
    sizes = _int_list(args.table_sizes, "--table-sizes")
    path = args.table_out
    done = {}
    if os.path.exists(path):
        with open(path) as f:
            done = json.load(f)
    supported = recompute_supported()
    print(f"Scaling table (ours only): L={args.levels}, hidden={args.hidden}, batch {args.batch}, "
          f"{args.iters} timed steps per cell, XLA {'off' if args.no_xla else args.xla}; results in {path} (resumable)",
          flush=True)
    for k in steps:
        for s in sizes:
            for r in rec_modes:
                key = f"K={k},size={s},recompute={r}"
                if key in done and not args.table_redo:
                    continue
                if r != "none" and not supported:
                    done[key] = {"status": "unsupported: our FlowModel has no recompute argument yet"}
                else:
                    done[key] = _table_cell(args, k, s, r)
                with open(path, "w") as f:
                    json.dump(done, f, indent=1, sort_keys=True)
                print(f"  {key}: {_cell_text(done[key])}", flush=True)
    print()
    head = f"{'K':>3s} {'size':>5s} " + "".join(f"{'img/s rec=' + r:>16s}{'peak MB':>10s}{'1st s':>7s}"
                                                  for r in rec_modes)
    print(head)
    print("-" * len(head))
    for k in steps:
        for s in sizes:
            line = f"{k:>3d} {s:>5d} "
            for r in rec_modes:
                c = done.get(f"K={k},size={s},recompute={r}", {})
                if c.get("status") == "ok":
                    line += f"{c['img_s']:>16.1f}{c['peak_bytes'] / 2**20:>10.0f}{c['first_step_s']:>7.0f}"
                else:
                    line += f"{c.get('status', 'not run')[:31]:>33s}"
            print(line)
    print("  peak MB: TF allocator peak during a train step above the memory held before it (activations and "
          "temporaries); the JSON file also holds rss_bytes, the peak RSS growth from the first step on "
          "(includes XLA compilation). 1st s: first train step (trace + compile).")


def _cell_text(c):
    if c.get("status") != "ok":
        return c.get("status")
    return (f"{c['img_s']:.1f} img/s, peak {c['peak_bytes'] / 2**20:.0f} MB, RSS {c['rss_bytes'] / 2**20:.0f} MB, "
            f"first step {c['first_step_s']:.0f} s")


def _table_cell(args, k, s, r):
    ns = argparse.Namespace(**vars(args))
    ns.steps, ns.image_size, ns.recompute = k, s, r
    try:
        check_config(ns, ("ours",))
    except BenchError as e:
        return {"status": f"skipped: {e}"}
    cmd = [sys.executable, "-m", "tfp_glow.bench", "--_cell", *_config_argv(ns)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.cell_timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout after {args.cell_timeout} s"}
    for line in out.stdout.splitlines():
        if line.startswith("CELL_JSON "):
            return json.loads(line[10:])
    tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
    return {"status": f"failed: {tail[:200]}"}


def _cell_child(args):
    tf = _tf()
    x = _images(args)
    model = Ours(args, x)
    hwm = _reset_hwm()
    rss0 = _proc_status()[0] if hwm else 0
    t = time.perf_counter()
    _sync(model.train())
    first = time.perf_counter() - t
    for _ in range(args.warmup):
        _sync(model.train())
    times, peaks = [], []
    for _ in range(args.iters):
        dt, peak = _timed(model.train, memory_stats_available())
        times.append(dt)
        peaks.append(peak or 0)
    rss = _proc_status()[1] - rss0 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("CELL_JSON " + json.dumps({"status": "ok", "img_s": args.batch / statistics.median(times),
                                     "peak_bytes": max(peaks), "rss_bytes": rss, "first_step_s": first,
                                     "params": model.params}), flush=True)
    del tf


def _int_list(text, opt):
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise BenchError(f"{opt} takes comma-separated integers; received {text!r}.") from None
    if not vals or min(vals) < 1:
        raise BenchError(f"{opt} takes comma-separated positive integers; received {text!r}.")
    return vals


# ---------------------------------------------------------------------------------- CLI
def build_parser(prog="tfp-glow bench"):
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
    p.add_argument("--_cell", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_rss-child", choices=("ours", "tfp"), default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None):
    """Entry point of `tfp-glow bench` / `python -m tfp_glow.bench`; returns an exit code.

    With `--quality`, the rest of the command line goes to `tfp_glow.bench.quality.main`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--quality" in argv:
        from tfp_glow.bench import quality  # only when asked: it starts subprocesses, may use torch
        return quality.main([a for a in argv if a != "--quality"])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _main(args)
    except BenchError as e:
        print(f"tfp-glow bench: error: {e}", file=sys.stderr)
        return 2


def _main(args):
    if args.scaling_table:
        if args.only == "tfp":
            raise BenchError("--scaling-table measures our model only; drop --only tfp.")
        args.iters = 3 if args.iters is None else args.iters
        args.warmup = 1 if args.warmup is None else args.warmup
        check_config(argparse.Namespace(**{**vars(args), "batch": 1, "image_size": 2 ** args.levels}), ())
        scaling_table(args)
        return 0
    args.iters = 10 if args.iters is None else args.iters
    args.warmup = 2 if args.warmup is None else args.warmup
    which = [args.only] if args.only else ["ours", "tfp"]
    check_config(args, which)  # before importing TensorFlow: bad input fails fast
    if args.recompute != "none" and not recompute_supported():
        print(f"note: --recompute {args.recompute} is unsupported: our FlowModel has no recompute argument yet; "
              "measuring without recomputation.")
        args.recompute = "none"
        check_config(args, which)
    if args._cell:
        _cell_child(args)
        return 0
    if args._rss_child:
        _rss_child(args, args._rss_child)
        return 0
    tf = _tf()
    if tf.config.list_physical_devices("GPU"):
        print("note: a GPU is visible; this benchmark was designed for CPU.")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"tfp-glow bench: {len(os.sched_getaffinity(0))} CPU cores, TensorFlow {tf.__version__}, "
          f"load average {load} at start", flush=True)
    peak = None if args.no_matmul else matmul_peak()
    if peak:
        print(f"  matmul peak: {peak:.1f} GFLOP/s", flush=True)
    res = measure(args, which)
    floor = None if args.no_floor else {"xla": conv_floor(args, jit=True), "tf": conv_floor(args, jit=False)}
    rss = {k: rss_subprocess(args, k) for k in which} if args.rss else None
    print_report(args, res, which, peak, floor, rss)
    if args.profile:
        print_profiles(args, which)
    print("  load average at end: " + ", ".join(f"{v:.1f}" for v in os.getloadavg())
          + " (other processes on the machine slow both models alike, since steps alternate)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items() if not k.startswith("_")}, "results": res,
                       "matmul_gflops": peak, "conv_floor_img_s": floor, "rss": rss}, f, indent=1, default=str)
    return 0


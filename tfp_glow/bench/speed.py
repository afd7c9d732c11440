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
  `config.train_flops_per_image` (convolutions only, forward x 3 for forward + backward).
- **convolutions alone** (`--no-floor` to skip): the same convolution stacks as the coupling
  networks and 1x1 convolutions, as raw `tf.nn.conv2d` / einsum forward + backward with
  nothing else, once under XLA and once with TF's own (oneDNN) kernels: what the convolutions
  cost on this machine, a floor for any Glow implementation here. On the 2-core CPU this was
  written on, XLA's convolutions ran at about half the speed of TF's oneDNN kernels.

The report printer is `tfp_glow.bench.report`, the `--rss` subprocesses `tfp_glow.bench.rss`.
"""
import inspect
import math
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from tfp_glow.bench import baselines_tfp
from tfp_glow.bench.config import level_shapes
from tfp_glow.models import FlowConfig, count_parameters
from tfp_glow.training import FlowModel


def recompute_supported():
    """Whether our `FlowModel` takes a `recompute` argument (none|step|level)."""
    return "recompute" in inspect.signature(FlowModel.__init__).parameters


# ------------------------------------------------------------------------------ helpers
def sync(x):
    """Wait for `x` (a tensor, or the first value of a dict of them) to be computed; returns it."""
    if isinstance(x, dict):
        x = next(iter(x.values()))
    if isinstance(x, tf.Tensor):
        x.numpy()
    return x


def memory_stats_available():
    """Whether TF's CPU allocator reports its memory use (`get_memory_info('CPU:0')`)."""
    try:
        tf.config.experimental.reset_memory_stats("CPU:0")
        tf.config.experimental.get_memory_info("CPU:0")
        return True
    except Exception:
        return False


def timed(fn, mem):
    """Run `fn` once; returns (seconds, peak allocator bytes above the start, or None)."""
    start = None
    if mem:
        tf.config.experimental.reset_memory_stats("CPU:0")
        start = tf.config.experimental.get_memory_info("CPU:0")["current"]
    t = time.perf_counter()
    sync(fn())
    dt = time.perf_counter() - t
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"] - start if mem else None
    return dt, peak


def matmul_peak(n=2048, chain=8, repeats=4):
    """Best float32 `n x n` matmul rate (GFLOP/s) of `chain` dependent matmuls in a tf.function."""
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
    """Our Glow's `FlowConfig` for the bench's architecture options."""
    kwargs = dict(levels=args.levels, steps=args.steps, hidden_channels=args.hidden, coupling=args.coupling)
    return FlowConfig("glow", (args.image_size, args.image_size, args.channels), kwargs)


class Ours:
    """Our `FlowModel` with its compiled Keras train function."""

    name = "ours"

    def __init__(self, args, x):
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
        self.params = count_parameters(model.distribution)

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
        self.dist = baselines_tfp.tfp_glow((args.image_size, args.image_size, args.channels), args.levels,
                                           args.steps, args.hidden, args.coupling, seed=0)
        baselines_tfp.initialize_actnorm(self.dist, x, args.n_bits)
        jit = args.tfp_xla == "on"
        self._train = baselines_tfp.make_train_step(self.dist, baselines_tfp.make_optimizer(1e-3), args.n_bits, jit)
        self._log_prob = baselines_tfp.make_eval_fn(self.dist, args.n_bits, jit_compile=jit)
        dist, batch = self.dist, args.batch
        self._sample = tf.function(lambda: dist.sample(batch), jit_compile=jit)
        self.x = tf.constant(x)
        self.params = baselines_tfp.count_parameters(self.dist)

    def train(self):
        return self._train(self.x)

    def log_prob(self):
        return self._log_prob(self.x)

    def sample(self):
        return self._sample()


MODELS = {"ours": Ours, "tfp": TFPGlow}


def make_images(args):
    """A fixed batch of random uint8 images of the configured size (seed 0)."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (args.batch, args.image_size, args.image_size, args.channels)).astype(np.uint8)


# ---------------------------------------------------------------------------- measuring
def measure(args, which):
    """Build the models in `which`, measure them alternating; returns a results dict."""
    x = make_images(args)
    mem = memory_stats_available()
    res = {"memory_source": "tf allocator" if mem else None}
    models = {}
    for key in which:
        t = time.perf_counter()
        models[key] = MODELS[key](args, x)
        res[f"{key}_build_s"] = time.perf_counter() - t
        res[f"{key}_params"] = models[key].params
        res[f"{key}_xla"] = bool(getattr(models[key], "jit", args.tfp_xla == "on"))
        print(f"  built {key}: {models[key].params:,} trainable parameters ({res[f'{key}_build_s']:.1f} s)",
              flush=True)
    for key, m in models.items():  # first train step: trace + compile + run
        dt, _ = timed(m.train, False)
        res[f"{key}_first_step_s"] = dt
        print(f"  {key}: first train step {dt:.1f} s", flush=True)
    for key, m in models.items():
        for _ in range(args.warmup):
            sync(m.train())
    times = {k: [] for k in models}
    peaks = {k: [] for k in models}
    for _ in range(args.iters):
        for key, m in models.items():
            dt, peak = timed(m.train, mem)
            times[key].append(dt)
            peaks[key].append(peak)
    for key in models:
        res[f"{key}_train"] = _rates(args.batch, times[key])
        res[f"{key}_train_peak_bytes"] = max(peaks[key]) if mem else None
    for what in ("log_prob", "sample"):
        for key, m in models.items():
            dt, _ = timed(getattr(m, what), False)
            res[f"{key}_{what}_first_s"] = dt
            for _ in range(max(1, args.warmup)):
                sync(getattr(m, what)())
        times = {k: [] for k in models}
        for _ in range(args.iters):
            for key, m in models.items():
                dt, _ = timed(getattr(m, what), False)
                times[key].append(dt)
        for key in models:
            res[f"{key}_{what}"] = _rates(args.batch, times[key])
    return res


def _rates(batch, times):
    return {"median": batch / statistics.median(times), "min": batch / max(times), "max": batch / min(times),
            "mean": batch * len(times) / sum(times)}

"""Ours vs TFP's own flows on scikit-learn's 8x8 digits: test bits/dim at equal budgets.

Four models, one run, one table:

| model          | what                                                                           |
|----------------|--------------------------------------------------------------------------------|
| ours glow      | `FlowModel(glow(8x8x1, levels=2, steps=4, hidden_channels=128))`, Keras `fit`     |
| tfb.Glow       | `tfb.Glow(output_shape=[8,8,1], num_glow_blocks=2, num_steps_per_block=4,       |
|                | GlowDefaultNetwork(num_hidden=128), GlowDefaultExitNetwork)`                    |
|                | (tfp_glow.bench.baselines_tfp)                                                   |
| ours realnvp   | `FlowModel(realnvp(8x8x1, levels=2, couplings_per_stage=3, hidden=64))`         |
| tfb.RealNVP    | 10 `tfb.RealNVP` couplings (as many as ours) on the flattened image, MLP         |
|                | conditioners whose width is solved so the parameter count matches ours           |

Same for all four: the data (`tfp_glow.data.load_digits`: train split to train, validation
split to pick the best weights seen, test split = the fixed held-out 360 images for the
figure), the bit depth (`--n-bits`, default 5 as `tfp-glow train` on digits), the optimiser
(Adam, `--lr`), the batch size, the shuffling seed, and the wall-clock budget (`--budget`
seconds each of training after the first step, whose trace/compile time is printed
separately; `--count-compile` counts it in the budget; validation passes count too). TFP's models train with a `tf.function` `GradientTape` loop
(Keras 3 cannot see their variables), ours with `FlowModel.fit`.

Test bits/dim use fixed dequantization noise: one array `u ~ U[0, 1)` drawn with numpy
(`--noise-seed`) and shared by all four models, so every model sees exactly the same
dequantized test images. Samples at temperature 1.0 and 0.7 are checked to be finite.

Run (about 4 x budget plus ~1 min):

    python examples/compare_tfp_digits.py --budget 60
"""
import argparse
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfp_glow.bench import baselines_tfp  # noqa: E402
from tfp_glow import data as data_lib  # noqa: E402
from tfp_glow.models import FlowConfig, count_parameters  # noqa: E402
from tfp_glow.training import FlowModel  # noqa: E402

MODELS = ("ours-glow", "tfp-glow", "ours-realnvp", "tfp-realnvp")
D = 64  # 8 x 8 x 1


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--budget", type=float, default=60.0, help="wall-clock seconds of training per model")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (all models)")
    p.add_argument("--batch", type=int, default=64, help="batch size (all models)")
    p.add_argument("--n-bits", type=int, default=5, help="bit depth of the dequantized digits")
    p.add_argument("--glow-steps", type=int, default=4, help="K of both Glows (levels 2)")
    p.add_argument("--glow-hidden", type=int, default=128, help="coupling width of both Glows")
    p.add_argument("--realnvp-hidden", type=int, default=64, help="conv width of our RealNVP")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    p.add_argument("--tfp-xla", choices=("on", "off"), default="off", help="XLA for TFP's training step")
    p.add_argument("--count-compile", action="store_true",
                   help="count the first step (tracing and XLA compilation) in the budget; by default the budget "
                        "starts after it and its time is printed separately")
    p.add_argument("--seed", type=int, default=0, help="model and shuffling seed")
    p.add_argument("--noise-seed", type=int, default=1234, help="seed of the fixed test/validation noise")
    args = p.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    bad = [m for m in args.models if m not in MODELS]
    if bad:
        p.error(f"unknown model(s) {bad}; choose from {', '.join(MODELS)}")
    if args.budget <= 0 or args.batch < 1 or not 1 <= args.n_bits <= 8:
        p.error("--budget must be > 0, --batch >= 1 and --n-bits in 1..8")
    return args


# ------------------------------------------------------------------------------ data
def fixed_dequantized(x_uint8, n_bits, seed):
    """Dequantized images with one fixed noise array (numpy), identical for every model."""
    u = np.random.default_rng(seed).random(x_uint8.shape, dtype=np.float64).astype(np.float32)
    return data_lib.dequantize(data_lib.reduce_bits(tf.constant(x_uint8), n_bits), n_bits, noise=u).numpy()


def bpd_from_log_prob(log_p, n_bits):
    return (-np.asarray(log_p, np.float64) + D * n_bits * math.log(2.0)) / (D * math.log(2.0))


def train_dataset(x, batch, seed):
    return (tf.data.Dataset.from_tensor_slices(x).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
            .batch(batch, drop_remainder=True).prefetch(2))


# ---------------------------------------------------------------------------- models
def realnvp_mlp_width(target, couplings, d=D):
    """Hidden width `w` of 2-layer MLPs (`d/2 -> w -> w -> d`) making `couplings` of them hold
    about `target` parameters: `w^2 + (d/2 + d + 2) w + d` each."""
    a, b, c = 1.0, d / 2 + d + 2, d - target / couplings
    return max(1, int(round((-b + math.sqrt(b * b - 4 * a * c)) / (2 * a))))


class Ours:
    def __init__(self, name, config, args):
        self.name = name
        keras.utils.set_random_seed(args.seed)
        self.model = FlowModel(config, n_bits=args.n_bits)
        self.params = count_parameters(self.model.distribution)
        self.args = args
        model = self.model
        self._log_prob = tf.function(lambda x: model.log_prob_and_bpd(x)[0])  # what fit optimises

    def initialize(self, x):
        self.model.initialize(x)
        self.model.compile(optimizer=keras.optimizers.Adam(self.args.lr))

    def log_prob(self, x_pre):
        return self._log_prob(tf.constant(x_pre)).numpy()

    def train(self, x_train, budget, on_epoch, count_compile):
        model = self.model
        steps_per_epoch = len(x_train) // self.args.batch
        state = {"steps": 0, "t0": time.perf_counter(), "first": None}
        state["start"] = state["t0"]

        class Budget(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                state["steps"] += 1
                now = time.perf_counter()
                if state["first"] is None:
                    state["first"] = now - state["t0"]
                    if not count_compile:
                        state["start"] = now
                if now - state["start"] > budget:
                    model.stop_training = True

            def on_epoch_end(self, epoch, logs=None):
                on_epoch()

        model.fit(train_dataset(x_train, self.args.batch, self.args.seed), epochs=10 ** 6,
                  steps_per_epoch=steps_per_epoch, verbose=0, callbacks=[Budget()])
        return state["steps"], time.perf_counter() - state["start"], state["first"]

    def get_state(self):
        return [v.numpy() for v in self.model.weights]

    def set_state(self, values):
        for v, x in zip(self.model.weights, values):
            v.assign(x)

    def sample(self, n, temperature):
        return self.model.sample(n, temperature=temperature, seed=0).numpy()


class TFP:
    def __init__(self, name, dist, args):
        self.name = name
        self.dist = dist
        self.params = baselines_tfp.count_parameters(dist)
        self.args = args

    def initialize(self, x):
        baselines_tfp.initialize_actnorm(self.dist, x, self.args.n_bits)
        self.optimizer = baselines_tfp.make_optimizer(self.args.lr)
        self.step = baselines_tfp.make_train_step(self.dist, self.optimizer, self.args.n_bits,
                                                  jit_compile=self.args.tfp_xla == "on")
        self._log_prob = tf.function(lambda x: self.dist.log_prob(x))

    def log_prob(self, x_pre):
        return self._log_prob(tf.constant(x_pre)).numpy()

    def train(self, x_train, budget, on_epoch, count_compile):
        ds = train_dataset(x_train, self.args.batch, self.args.seed)
        t0 = start = time.perf_counter()
        steps, first = 0, None
        while True:
            for batch in ds:
                self.step(batch).numpy()
                steps += 1
                now = time.perf_counter()
                if first is None:
                    first = now - t0
                    if not count_compile:
                        start = now
                if now - start > budget:
                    return steps, now - start, first
            on_epoch()

    def get_state(self):
        return [v.numpy() for v in self.dist.variables]

    def set_state(self, values):
        for v, x in zip(self.dist.variables, values):
            v.assign(x)

    def sample(self, n, temperature):
        # temperature scales the base standard deviation, as FlowModel.sample does
        z = tf.random.stateless_normal([n, D], seed=[0, 0]) * temperature
        return self.dist.bijector.forward(z).numpy()


def build(name, args):
    shape = (8, 8, 1)
    if name == "ours-glow":
        return Ours(name, FlowConfig("glow", shape, dict(levels=2, steps=args.glow_steps,
                                                         hidden_channels=args.glow_hidden)), args)
    if name == "tfp-glow":
        tf.random.set_seed(args.seed)
        return TFP(name, baselines_tfp.tfp_glow(shape, levels=2, steps=args.glow_steps, hidden=args.glow_hidden,
                                                seed=args.seed), args)
    ours_rnvp = FlowConfig("realnvp", shape, dict(levels=2, couplings_per_stage=3, hidden=args.realnvp_hidden))
    if name == "ours-realnvp":
        return Ours(name, ours_rnvp, args)
    target = count_parameters(ours_rnvp.build())
    couplings = 3 + 3 + 4  # as many couplings as ours (two levels: 3 checkerboard + 3 channel, then 4)
    width = realnvp_mlp_width(target, couplings)
    tf.random.set_seed(args.seed)
    return TFP(name, baselines_tfp.tfp_realnvp(shape, couplings=couplings, hidden_units=(width, width),
                                               seed=args.seed), args)


# ------------------------------------------------------------------------------- run
def run_one(m, args, x_train, val_pre, test_pre):
    init = x_train[np.random.default_rng(args.seed).permutation(len(x_train))[:256]]
    m.initialize(init)
    best = {"bpd": float("inf"), "state": m.get_state(), "evals": 0}

    def on_epoch():
        v = float(np.mean(bpd_from_log_prob(m.log_prob(val_pre), args.n_bits)))
        best["evals"] += 1
        if np.isfinite(v) and v < best["bpd"]:
            best["bpd"], best["state"] = v, m.get_state()

    steps, seconds, first = m.train(x_train, args.budget, on_epoch, args.count_compile)
    on_epoch()  # the final weights are a candidate too
    m.set_state(best["state"])
    test_bpd = float(np.mean(bpd_from_log_prob(m.log_prob(test_pre), args.n_bits)))
    finite = {t: bool(np.all(np.isfinite(m.sample(64, t)))) for t in (1.0, 0.7)}
    return {"params": m.params, "steps": steps, "seconds": seconds, "first_step_s": first, "val_bpd": best["bpd"], "test_bpd": test_bpd,
            "evals": best["evals"], "samples_finite": finite}


def main(argv=None):
    args = parse_args(argv)
    x_train = data_lib.load_digits("train")
    x_val = data_lib.load_digits("validation")
    x_test = data_lib.load_digits("test")
    val_pre = fixed_dequantized(x_val, args.n_bits, args.noise_seed + 1)
    test_pre = fixed_dequantized(x_test, args.n_bits, args.noise_seed)
    print(f"digits 8x8: {len(x_train)} train / {len(x_val)} validation / {len(x_test)} test images, "
          f"{args.n_bits} bits, budget {args.budget:g} s each, Adam lr {args.lr:g}, batch {args.batch}", flush=True)
    results = {}
    for name in args.models:
        m = build(name, args)
        print(f"  {name}: {m.params:,} parameters, training ...", flush=True)
        results[name] = run_one(m, args, x_train, val_pre, test_pre)
        r = results[name]
        print(f"    first step {r['first_step_s']:.1f} s, then {r['steps']} steps in {r['seconds']:.0f} s, best validation {r['val_bpd']:.3f}, "
              f"test {r['test_bpd']:.3f} bits/dim", flush=True)
    print()
    print(f"{'model':14s}{'params':>10s}{'1st step s':>11s}{'steps':>8s}{'steps/s':>9s}{'val bpd':>9s}{'test bpd':>10s}"
          f"{'samples finite (T=1, 0.7)':>28s}")
    for name, r in results.items():
        fin = ", ".join("yes" if r["samples_finite"][t] else "NO" for t in (1.0, 0.7))
        print(f"{name:14s}{r['params']:>10,}{r['first_step_s']:>11.1f}{r['steps']:>8d}{r['steps'] / r['seconds']:>9.1f}{r['val_bpd']:>9.3f}"
              f"{r['test_bpd']:>10.3f}{fin:>28s}")
    for ours, theirs in (("ours-glow", "tfp-glow"), ("ours-realnvp", "tfp-realnvp")):
        if ours in results and theirs in results:
            a, b = results[ours], results[theirs]
            gap = 100 * abs(a["params"] - b["params"]) / b["params"]
            verdict = "ours at least as good" if a["test_bpd"] <= b["test_bpd"] else "TFP BETTER"
            print(f"{ours} vs {theirs}: test {a['test_bpd']:.3f} vs {b['test_bpd']:.3f} bits/dim "
                  f"({a['test_bpd'] - b['test_bpd']:+.3f}; {verdict}); parameters {gap:.1f}% apart")
    print("test bits/dim: discrete-data bound with one fixed dequantization noise array shared by all models; "
          "weights: best validation bits/dim seen during the budget; "
          + ("the budget includes the first step." if args.count_compile else
             "the budget starts after the first step (trace + compile), whose time is shown."))
    return 0


if __name__ == "__main__":
    sys.exit(main())

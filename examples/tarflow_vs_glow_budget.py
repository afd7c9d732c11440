"""TarFlow against Glow, each with its `tfp-glow train` defaults, for the same wall-clock budget.

    python examples/tarflow_vs_glow_budget.py --data digits28 --budget 600
    python examples/tarflow_vs_glow_budget.py --data photos32 --budget 600 --flows tarflow,glow

Each flow is built and compiled exactly as `tfp-glow train --flow F --data D` would
(`recipes.build_model`), trained on the training split in float32 (the same for both, so the
step costs compare) until the budget runs out, then scored on the test split with fixed
dequantization noise. The budget includes the first step's tracing and compilation, as a user
waits for it. It prints test bits/dim, steps, images/s and the fraction of finite samples
at T = 1, and writes a curves PNG of test bits/dim against seconds and against steps
(`--out`). The test figure is measured at every `--every` seconds on `--eval-n` test images, and
on the whole test split at the end. Run it on an otherwise idle machine.
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfp_glow import data, recipes  # noqa: E402
from tfp_glow.data import splits  # noqa: E402
from tfp_glow.models import count_parameters  # noqa: E402
from tfp_glow.plots import canvas  # noqa: E402


class Budget(keras.callbacks.Callback):
    """Stops `fit` after `seconds` of training and records test bits/dim every `every` seconds."""

    def __init__(self, seconds, every, test, batch):
        super().__init__()
        self.seconds, self.every, self.test, self.batch = seconds, every, test, batch
        self.curve, self.steps = [], 0

    def on_train_begin(self, logs=None):
        self.start = self.last = time.perf_counter()
        self.paused = 0.0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        now = time.perf_counter()
        if now - self.last >= self.every:
            trained = now - self.start - self.paused
            bpd = self.model.evaluate(self.test, verbose=0, return_dict=True)["bits_per_dim"]
            self.last = time.perf_counter()
            self.paused += self.last - now  # evaluation is not training time
            self.curve.append((trained, self.steps, bpd))
        if time.perf_counter() - self.start - self.paused >= self.seconds:
            self.model.stop_training = True


def run(flow, args, info, train_x, test_x):
    keras.utils.set_random_seed(args.seed)
    model, recipe = recipes.build_model(args.data, flow, info=info)
    probe = data.make_dataset(test_x[:args.eval_n], 256, shuffle=False)
    budget = Budget(args.budget, args.every, probe, recipe.batch_size)
    ds = data.make_dataset(train_x, recipe.batch_size, seed=args.seed, repeat=True, drop_remainder=True)
    model.fit(ds, epochs=1, steps_per_epoch=10 ** 7, verbose=0, callbacks=[budget])
    train_s = time.perf_counter() - budget.start - budget.paused
    test = model.evaluate(data.make_dataset(test_x, 256, shuffle=False), verbose=0, return_dict=True)["bits_per_dim"]
    x = model.sample(64, 1.0, seed=0).numpy()
    return {"flow": flow, "flow_kwargs": recipe.flow_kwargs, "params": count_parameters(model.distribution),
            "test_bits_per_dim": float(test), "steps": budget.steps, "train_seconds": train_s,
            "img_per_s": budget.steps * recipe.batch_size / train_s, "lr": recipe.learning_rate,
            "finite_samples_T1": float(np.mean(np.isfinite(x.reshape(64, -1)).all(axis=1))),
            "curve": budget.curve}


def plot(results, path, title):
    fig = canvas.new_figure(2, size=5)
    ax_t, ax_s = fig.subplots(1, 2)
    for r in results:
        t, s, b = zip(*r["curve"]) if r["curve"] else ((), (), ())
        ax_t.plot(t, b, label=f"{r['flow']} ({r['test_bits_per_dim']:.3f})")
        ax_s.plot(s, b, label=r["flow"])
    ax_t.set_xlabel("training seconds")
    ax_s.set_xlabel("steps")
    for ax in (ax_t, ax_s):
        ax.set_ylabel("test bits/dim (probe images)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return canvas.save_figure(fig, path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits28")
    p.add_argument("--flows", default="tarflow,glow")
    p.add_argument("--budget", type=float, default=600.0, help="training seconds per flow (default 600)")
    p.add_argument("--every", type=float, default=60.0, help="seconds between test probes (default 60)")
    p.add_argument("--eval-n", type=int, default=512, help="test images of each probe (default 512)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join("runs", "examples", "tarflow_vs_glow"))
    args = p.parse_args()
    train_x, info = splits.load_split(args.data, "train")
    test_x, _ = splits.load_split(args.data, "test")
    results = []
    for flow in args.flows.split(","):
        r = run(flow, args, info, train_x, test_x)
        results.append(r)
        print(f"{flow:8} {r['params']:>10,} params  test {r['test_bits_per_dim']:.4f} bits/dim  {r['steps']} steps  "
              f"{r['img_per_s']:.1f} img/s  finite samples at T=1: {r['finite_samples_T1']:.0%}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"{args.data}_{int(args.budget)}s_seed{args.seed}")
    with open(stem + ".json", "w") as f:
        json.dump({"args": vars(args), "results": results}, f, indent=1)
    print("wrote", stem + ".json", plot(results, stem + ".png", f"{args.data}, {args.budget:g} s each, float32"))


if __name__ == "__main__":
    main()

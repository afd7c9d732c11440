"""Instrument a Glow training run per layer and per step, to find what blows up first.

A plain `GradientTape` loop (no warmup, no clipping, no skipping: the bare recipe) on the
offline 28x28 digits. Every step it records the training batch's bits/dim, the global
gradient norm and the variables with the largest gradient norms; every `--every` steps it
runs one eager, instrumented `log_prob` pass on a fixed batch and records, per layer:

* couplings: the largest |log s| and the mean log-det term of the density pass;
* actnorms: the largest |log_scale|;
* split priors and the top prior: the largest |log sigma|.

It writes `OUT.csv` (one row per step) and `OUT_layers.csv` (one row per layer per probe)
and prints the first step at which anything became non-finite.

    python examples/diagnose_divergence.py --steps 300 --out /tmp/diag
    PYTHONPATH=/path/to/other/checkout python examples/diagnose_divergence.py ...  # compare

Run it against two checkouts to compare a change (docs/design.md, Training stability).
"""
import argparse
import csv
import math
import time

import keras
import numpy as np
import tensorflow as tf

import tfp_glow as tg
from tfp_glow.bijectors.actnorm import ActNorm
from tfp_glow.bijectors.coupling import AffineCoupling
from tfp_glow.bijectors.split import LearnedPrior, Split

_RECORD = []  # (layer name, statistic, value) of the current instrumented pass


def _instrument():
    """Wrap the density-pass hooks so an eager pass records what every layer does."""
    transform, prior = AffineCoupling._transform, Split._prior

    def recording_transform(self, v, h, inverse):
        out, ldj = transform(self, v, h, inverse)
        if _RECORD is not None and tf.executing_eagerly():
            # the log-det of the density pass is -ldj (ldj is the sampling direction's)
            _RECORD.append((self.name, "density_logdet_mean", float(tf.reduce_mean(-ldj))))
            _, raw = tf.split(h, 2, axis=-1)
            from tfp_glow.bijectors.coupling import log_scale_from_raw
            kwargs = {"scale_min": self._scale_min} if hasattr(self, "_scale_min") else {}
            log_s = log_scale_from_raw(raw, self._scale_fn, self._scale_bound, **kwargs)
            _RECORD.append((self.name, "max_abs_log_s", float(tf.reduce_max(tf.abs(log_s)))))
        return out, ldj

    def recording_prior(self, x1):
        mean, log_sigma = prior(self, x1)
        if tf.executing_eagerly():
            _RECORD.append((self.name, "max_abs_log_sigma", float(tf.reduce_max(tf.abs(log_sigma)))))
            _RECORD.append((self.name, "max_abs_mean", float(tf.reduce_max(tf.abs(mean)))))
        return mean, log_sigma

    AffineCoupling._transform = recording_transform
    Split._prior = recording_prior


def _probe(model, x_pre):
    _RECORD.clear()
    model.distribution.bijector.inverse(x_pre)  # eager: every hook records
    rows = list(_RECORD)
    for m in model.distribution.bijector.submodules:
        if isinstance(m, ActNorm):
            ls = [v for v in m.trainable_variables if "log_scale" in v.name][0]
            rows.append((m.name, "max_abs_log_scale", float(tf.reduce_max(tf.abs(ls)))))
        if isinstance(m, LearnedPrior):
            rows.append((m.name, "max_abs_log_sigma", float(tf.reduce_max(tf.abs(m._log_sigma())))))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="digits28")
    p.add_argument("--levels", type=int, default=2)
    p.add_argument("--steps-per-level", type=int, default=4)
    p.add_argument("--hidden", type=int, default=400)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--every", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="diag")
    args = p.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    x_train, _ = tg.data.get_source(args.data, "train")
    model = tg.FlowModel(tg.FlowConfig("glow", x_train.shape[1:], dict(
        levels=args.levels, steps=args.steps_per_level, hidden_channels=args.hidden)), n_bits=8)
    model.initialize(x_train[:256])
    _instrument()
    variables = model.distribution.trainable_variables
    names = [v.name for v in variables]
    opt = keras.optimizers.Adam(args.lr)
    opt.build(variables)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            _, _, bpd = model.log_prob_and_bpd(model.preprocess(x))
            loss = tf.reduce_mean(bpd)
        grads = tape.gradient(loss, variables)
        opt.apply(grads, variables)
        return loss, tf.linalg.global_norm(grads), tf.stack([tf.norm(g) for g in grads])

    ds = iter(tg.data.make_dataset(x_train, args.batch, seed=args.seed, repeat=True, drop_remainder=True))
    probe_x = model.preprocess(x_train[:64], fixed_noise=True)
    steps_csv = open(f"{args.out}.csv", "w", newline="")
    layers_csv = open(f"{args.out}_layers.csv", "w", newline="")
    sw, lw = csv.writer(steps_csv), csv.writer(layers_csv)
    sw.writerow(["step", "seconds", "bits_per_dim", "grad_norm", "top_gradients"])
    lw.writerow(["step", "layer", "statistic", "value"])
    t0, first_bad = time.time(), None
    for i in range(args.steps):
        if i % args.every == 0:
            for row in _probe(model, probe_x):
                lw.writerow([i, *row])
            layers_csv.flush()
        loss, gnorm, norms = step(next(ds))
        loss, gnorm, norms = float(loss), float(gnorm), norms.numpy()
        top = np.argsort(-np.nan_to_num(norms, nan=np.inf))[:3]
        sw.writerow([i, f"{time.time() - t0:.1f}", f"{loss:.4f}", f"{gnorm:.2f}",
                     "; ".join(f"{names[j]}={norms[j]:.1f}" for j in top)])
        if i % 10 == 0:
            steps_csv.flush()
            print(f"step {i:5d}  bits/dim {loss:8.4f}  grad norm {gnorm:10.2f}  top: {names[top[0]]}", flush=True)
        if first_bad is None and not (math.isfinite(loss) and math.isfinite(gnorm)):
            first_bad = i
            print(f"non-finite at step {i}: loss {loss}, grad norm {gnorm}", flush=True)
            for row in _probe(model, probe_x):
                lw.writerow([i, *row])
            break
    steps_csv.close()
    layers_csv.close()
    print(f"done: {i + 1} steps, first non-finite step: {first_bad}; wrote {args.out}.csv, {args.out}_layers.csv")


if __name__ == "__main__":
    main()

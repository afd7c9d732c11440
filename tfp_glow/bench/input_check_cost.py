"""`tfp-glow bench --input-check-cost`: what the in-graph input check costs a train step.

`fit` on a `tf.data` pipeline of float images checks every batch inside the compiled step
(`training.input_checks.batch_code`: finite, in 0..255, whole levels; uint8 images need no
check and get none). Two copies of our Glow with the bench's architecture train on the same
float32 batch of integer levels, alternating step by step: one with the check, one whose check
is switched off in this process only. The figure is the difference of their median step times.
"""
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from tfp_glow.bench.speed import make_images, ours_config, sync
from tfp_glow.training import FlowModel, input_checks

__all__ = ["measure"]


def _model(args, x):
    model = FlowModel(ours_config(args), n_bits=args.n_bits)
    model.initialize(x)
    xla = "off" if args.no_xla else args.xla
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile={"auto": "auto", "on": True, "off": False}[xla])
    model.make_train_function()
    return model


def measure(args):
    """Prints the median train step with and without the check; returns the figures."""
    x = make_images(args).astype(np.float32)  # float levels: the check runs on every batch
    checked, unchecked = _model(args, x), _model(args, x)
    check = input_checks.batch_code
    input_checks.batch_code = lambda model, batch: None if model is unchecked else check(model, batch)
    try:
        steps = {}
        for name, model in (("checked", checked), ("unchecked", unchecked)):
            it = iter(tf.data.Dataset.from_tensors(x).repeat())
            steps[name] = (model, it)
            for _ in range(1 + args.warmup):  # trace, compile and warm up under the patch
                sync(model.train_function(it))
        times = {k: [] for k in steps}
        for _ in range(args.iters):
            for name, (model, it) in steps.items():
                t = time.perf_counter()
                sync(model.train_function(it))
                times[name].append(time.perf_counter() - t)
    finally:
        input_checks.batch_code = check
    res = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    res["cost_ms"] = res["checked"] - res["unchecked"]
    print(f"input check cost: Glow {args.image_size}x{args.image_size}x{args.channels}, L={args.levels} "
          f"K={args.steps} hidden={args.hidden}, batch {args.batch} of float32 levels, XLA {bool(checked.jit_compile)}, "
          f"{args.iters} alternating steps")
    print(f"  train step median: {res['checked']:.2f} ms with the check, {res['unchecked']:.2f} ms without: "
          f"{res['cost_ms']:+.2f} ms ({100 * res['cost_ms'] / res['unchecked']:+.1f}%)")
    return res

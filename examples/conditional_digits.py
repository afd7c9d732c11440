"""A class-conditional Glow p(x | y) on the offline 8x8 digits: Bayes-rule classification,
conditional vs unconditional bits/dim, samples by class, and a SavedModel with `classify`.

    python examples/conditional_digits.py               # ~3 minutes on 2 cores
    python examples/conditional_digits.py --epochs 10   # quicker, less accurate

`ConditionalFlowModel.fit(x, y)` trains `log p(x | y)`; `evaluate(x, y)` reports the bits/dim
and the accuracy of `argmax_y log p(x | y) + log p(y)` (`log p(y)`: the training label
frequencies); without labels it reports the marginal `log p(x) = logsumexp_y log p(x|y) p(y)`,
the figure to compare with an unconditional model. The same is `tfp-glow train --conditional`.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfp_glow import plots  # noqa: E402
from tfp_glow.data import labeled  # noqa: E402
from tfp_glow.training.conditional import ConditionalFlowModel  # noqa: E402
from tfp_glow.models import FlowConfig, count_parameters  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join("runs", "examples", "conditional_digits"))
    args = p.parse_args()

    keras.utils.set_random_seed(args.seed)
    x, y, _, k = labeled.load_labeled_split("digits", "train")
    xv, yv, _, _ = labeled.load_labeled_split("digits", "validation")
    xt, yt, _, _ = labeled.load_labeled_split("digits", "test")
    config = FlowConfig("glow", (8, 8, 1), {"levels": 2, "steps": args.steps, "hidden_channels": args.hidden,
                                            "num_classes": k})
    model = ConditionalFlowModel(config, n_bits=5)
    model.compile(keras.optimizers.Adam(2e-3), warmup_steps=50)
    print(f"class-conditional glow on 8x8 digits: {count_parameters(model.distribution):,} parameters, {k} classes")
    t0 = time.time()
    model.fit(x, y, batch_size=64, epochs=args.epochs, validation_data=(xv, yv), verbose=2)
    print(f"trained in {time.time() - t0:.0f} s")

    cond = model.evaluate(xt, yt, verbose=0, return_dict=True)
    marginal = model.evaluate(xt, verbose=0, return_dict=True)
    print(f"\ntest bits/dim of log p(x | y): {cond['bits_per_dim']:.4f}")
    print(f"test bits/dim of log p(x) (marginal over labels): {marginal['bits_per_dim']:.4f}")
    print(f"test accuracy (Bayes rule argmax_y log p(x|y) + log p(y)): {cond['accuracy']:.4f}")

    per_class = 8
    labels = np.repeat(np.arange(k), per_class)
    grid = os.path.join(args.out, "samples_by_class_t0.7.png")
    plots.save_image_grid(grid, model.sample_images(len(labels), 0.7, seed=args.seed, labels=labels), cols=per_class)
    print(f"wrote {grid} (one row per class)")

    saved = os.path.join(args.out, "saved_model")
    model.export(saved)
    loaded = tf.saved_model.load(saved)
    served = loaded.signatures["classify"](x=tf.constant(xt[:10]))["label"].numpy()
    print(f"SavedModel {saved}: classify(test[:10]) = {served.tolist()} (true {yt[:10].tolist()})")


if __name__ == "__main__":
    main()

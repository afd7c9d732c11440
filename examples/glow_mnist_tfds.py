"""Glow on MNIST through TensorFlow Datasets -- for users with internet access.

    python examples/glow_mnist_tfds.py                     # downloads MNIST (~11 MB) on first use
    python examples/glow_mnist_tfds.py --data-dir ~/tensorflow_datasets --epochs 10

NEEDS THE INTERNET on first use (or MNIST already prepared in --data-dir): `tfds.load("mnist")`
downloads the data, and the `tfds` extra (`pip install "tfp_glow[tfds]"`). Without the network,
the script says so and exits cleanly (exit code 0); the offline examples (`glow_digits.py`,
`nice_realnvp_digits.py`, `realnvp_toy_2d.py`) need nothing.

Model: Glow with L = 2 levels (28 = 4 x 7, so two squeezes) of K = 8 steps with 256-channel
coupling nets, 8-bit pixels. On 2 CPU cores the default (3 epochs of 300 steps of 64 images)
takes roughly 15-30 minutes; the Glow paper reports about 1.05 bits/dim after full training
on a GPU. Prints the test bits/dim (fixed dequantization noise) and writes sample grids.
"""
import argparse
import os
import socket
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from tfp_glow import data, plots  # noqa: E402
from tfp_glow.training import callbacks  # noqa: E402
from tfp_glow.models import FlowConfig, count_parameters  # noqa: E402
from tfp_glow.training import FlowModel  # noqa: E402


def _no_data(reason):
    print("glow_mnist_tfds.py needs MNIST from TensorFlow Datasets, which could not be loaded:\n"
          f"  {reason}\n"
          "Run it on a machine with internet access (the first run downloads ~11 MB), or pass "
          "--data-dir with MNIST already prepared. The offline examples need no download: "
          "examples/glow_digits.py, examples/nice_realnvp_digits.py, examples/realnvp_toy_2d.py.")
    sys.exit(0)


def check_download_possible(data_dir):
    """Fail fast without a network: tfds retries a failing download for minutes."""
    from tfp_glow.extras import require

    tfds = require("tensorflow_datasets", "tfds", "examples/glow_mnist_tfds.py")  # names the extra if missing

    try:
        if tfds.builder("mnist", data_dir=data_dir).is_prepared():
            return
    except Exception:  # noqa: BLE001 - then let tfds.load report the problem
        return
    try:
        socket.getaddrinfo("storage.googleapis.com", 443)  # where tfds downloads MNIST from
    except OSError as e:
        _no_data(f"MNIST is not prepared in the TFDS data directory and the download host cannot be "
                 f"resolved (no internet access?): {e}")


def load(split, data_dir):
    try:
        return data.get_source("mnist", split, data_dir=data_dir)
    except RuntimeError as e:  # tfds could not download or read the data
        _no_data(e)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="TFDS data directory")
    p.add_argument("--levels", type=int, default=2)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--steps-per-epoch", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--n-bits", type=int, default=8)
    p.add_argument("--test-examples", type=int, default=10000, help="test images to evaluate (max 10000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join("runs", "examples", "glow_mnist"))
    args = p.parse_args()

    check_download_possible(args.data_dir)
    train_x, info = load("train", args.data_dir)
    test_x, _ = load("test", args.data_dir)
    keras.utils.set_random_seed(args.seed)
    config = FlowConfig("glow", tuple(info.shape), {"levels": args.levels, "steps": args.steps,
                                                    "hidden_channels": args.hidden})
    model = FlowModel(config, n_bits=args.n_bits)
    model.compile(keras.optimizers.Adam(args.lr))
    train = data.make_dataset(train_x, args.batch_size, seed=args.seed, repeat=True, drop_remainder=True)
    test = data.make_dataset(test_x.take(args.test_examples), 256, shuffle=False)
    ckpt_dir = os.path.join(args.out, "checkpoints")
    print(f"glow on MNIST {list(info.shape)}: {count_parameters(model.distribution):,} parameters")
    t0 = time.time()
    model.fit(train, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, verbose=2, shuffle=False,
              callbacks=[callbacks.NaNGuard(ckpt_dir), callbacks.FlowCheckpoint(ckpt_dir),
                         callbacks.SampleGrid(args.out, temperature=0.7)])
    seconds = time.time() - t0
    result = model.evaluate(test, verbose=0, return_dict=True)
    try:
        paths = plots.save_sample_grids(model, args.out, (0.7, 1.0), seed=args.seed)
    except FloatingPointError as e:
        raise SystemExit(str(e)) from e
    print(f"\ntest bits/dim: {result['bits_per_dim']:.4f}  ({args.test_examples} test images, "
          f"{args.epochs} x {args.steps_per_epoch} steps in {seconds:.0f} s)")
    for path in paths:
        print(f"  {path}")


if __name__ == "__main__":
    main()

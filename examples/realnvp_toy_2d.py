"""RealNVP on 2-D toy data, with the density pictures of the RealNVP paper (Dinh et al. 2017, fig. 1).

    python examples/realnvp_toy_2d.py                        # moons and 8gaussians, ~2-3 minutes
    python examples/realnvp_toy_2d.py --data checkerboard rings circles --steps 3000

For each data set: 8 affine couplings with alternating halves (MLP conditioners 2 x 128,
`exp(2 tanh(h / 2))` scales, an actnorm after each coupling) trained by maximum likelihood with
Keras `fit`, then one figure `<name>_density.png` with four panels: the data, the model density
`exp(log p(x))` on a grid, samples of the model, and the data mapped to the latent space
(which should look like a standard normal). Prints the test nll (nats per point) of each.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from tfp_glow import data, plots  # noqa: E402
from tfp_glow.training import callbacks  # noqa: E402
from tfp_glow.models import FlowConfig  # noqa: E402
from tfp_glow.training import FlowModel  # noqa: E402


def fit_toy(name, args):
    keras.utils.set_random_seed(args.seed)
    config = FlowConfig("realnvp", (2,), {"couplings_per_stage": args.couplings, "hidden": [args.hidden] * 2})
    model = FlowModel(config, n_bits=None)
    model.compile(keras.optimizers.Adam(args.lr))
    x_train, _ = data.get_source(name, "train")   # 2000 points each, independent seeds per split
    x_val, _ = data.get_source(name, "validation")
    x_test, _ = data.get_source(name, "test")
    train = data.make_dataset(x_train, args.batch_size, seed=args.seed, repeat=True, drop_remainder=True)
    val = data.make_dataset(x_val, 2000, shuffle=False)
    epochs = max(1, args.steps // 100)
    t0 = time.time()
    model.fit(train, validation_data=val, epochs=epochs, steps_per_epoch=100, verbose=2, shuffle=False,
              callbacks=[callbacks.NaNGuard()])
    seconds = time.time() - t0
    path, nll = plots.plot_density_2d(model, x_test, os.path.join(args.out, f"{name}_density.png"),
                                      title=f"RealNVP on {name}")
    return nll, path, seconds


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", choices=data.TOY_NAMES, default=["moons", "8gaussians"])
    p.add_argument("--couplings", type=int, default=8)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--steps", type=int, default=2000, help="training steps per data set")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join("runs", "examples", "realnvp_toy_2d"))
    args = p.parse_args()
    results = {name: fit_toy(name, args) for name in args.data}
    print()
    for name, (nll, path, seconds) in results.items():
        print(f"{name:12s} test nll: {nll:.4f} nats/point  (trained in {seconds:.0f} s)  {path}")


if __name__ == "__main__":
    main()

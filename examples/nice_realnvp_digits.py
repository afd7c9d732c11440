"""NICE and RealNVP on the offline 8x8 digits, at small scale; prints test bits/dim of each.

    python examples/nice_realnvp_digits.py            # about 2-3 minutes on 2 CPU cores
    python examples/nice_realnvp_digits.py --models realnvp --epochs 60

Reproduces, at toy scale, the two papers' image experiments on the data set that ships with
scikit-learn (1293 train / 144 validation / 360 test images, `tfp_glow.data.load_digits`):

* NICE (Dinh et al. 2015): the image flattened to 64 values, 4 additive couplings with MLP
  conditioners (here 3 x 256 units; the paper: 5 x 1000 on MNIST), then the diagonal scaling;
  100 epochs at lr 1e-2.
* RealNVP (Dinh et al. 2017): multi-scale, checkerboard couplings, squeeze, channel couplings,
  factor out half; here 2 scales, 3 couplings per stage, 64-channel conv nets; 30 epochs at
  lr 1e-3.

Pixels are reduced to 5 bits and uniformly dequantized; test bits/dim use fixed noise, so the
figures repeat (a uniform model scores exactly 5.0). Sample grids at temperature 0.7 and 1.0
are written next to the printed figures.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfp_glow import data, plots  # noqa: E402
from tfp_glow.training import callbacks  # noqa: E402
from tfp_glow.models import FlowConfig, count_parameters  # noqa: E402
from tfp_glow.training import FlowModel  # noqa: E402

# name -> (config, default epochs, default learning rate). NICE's scaling layer starts at
# scale 1, while the digits' constant border pixels want log-scales near -4.7; NICE therefore
# gets a higher learning rate and more (cheap: ~0.3 s) epochs.
MODELS = {
    "nice": (FlowConfig("nice", (8, 8, 1), {"couplings": 4, "hidden": [256, 256, 256]}), 100, 1e-2),
    "realnvp": (FlowConfig("realnvp", (8, 8, 1), {"levels": 2, "couplings_per_stage": 3, "hidden": 64}), 30, 1e-3),
}


def train_and_report(name, args, splits):
    config, epochs, lr = MODELS[name]
    epochs, lr = args.epochs or epochs, args.lr or lr
    keras.utils.set_random_seed(args.seed)
    model = FlowModel(config, n_bits=args.n_bits)
    model.compile(keras.optimizers.Adam(lr))
    train = data.make_dataset(splits["train"], args.batch_size, seed=args.seed, drop_remainder=True)
    val = data.make_dataset(splits["validation"], 256, shuffle=False)
    test = data.make_dataset(splits["test"], 256, shuffle=False)
    t0 = time.time()
    model.fit(train, validation_data=val, epochs=epochs, verbose=2, shuffle=False,
              callbacks=[callbacks.NaNGuard()])
    seconds = time.time() - t0
    result = model.evaluate(test, verbose=0, return_dict=True)
    paths = []
    for temperature in (0.7, 1.0):
        images = model.sample_images(64, temperature, seed=args.seed)
        assert np.all(np.isfinite(model.sample(64, temperature, seed=args.seed).numpy()))
        paths.append(plots.save_image_grid(os.path.join(args.out, f"{name}_samples_t{temperature:g}.png"), images,
                                           title=plots.sample_title(temperature, what=f"{name} samples")))
    return {"name": name, "params": count_parameters(model.distribution), "seconds": seconds, "epochs": epochs,
            "lr": lr,
            "test_bpd": float(result["bits_per_dim"]), "paths": paths}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["nice", "realnvp"])
    p.add_argument("--epochs", type=int, default=None, help="default: nice 100, realnvp 30")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=None, help="default: nice 1e-2, realnvp 1e-3")
    p.add_argument("--n-bits", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join("runs", "examples", "nice_realnvp_digits"))
    args = p.parse_args()
    splits = {s: data.load_digits(s) for s in ("train", "validation", "test")}
    results = [train_and_report(name, args, splits) for name in args.models]
    print(f"\n8x8 digits at {args.n_bits} bits, 360 test images (a uniform model scores {args.n_bits:.4f} bits/dim)")
    for r in results:
        print(f"  {r['name']:8s} test bits/dim: {r['test_bpd']:.4f}   ({r['params']:,} parameters, {r['epochs']} "
              f"epochs at lr {r['lr']:g}, trained in {r['seconds']:.0f} s)")
        for path in r["paths"]:
            print(f"           {path}")


if __name__ == "__main__":
    main()

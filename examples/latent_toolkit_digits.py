"""The latent toolkit on the offline digits: interpolation, "class A -> class B" manipulation,
and sampling with a temperature per level.

    python examples/latent_toolkit_digits.py                      # trains a small Glow (~2 min)
    python examples/latent_toolkit_digits.py --run runs/glow-digits   # or uses a trained run

Interpolation uses the full latent (every split level), so each row starts and ends at the
encoded examples exactly. The manipulation direction is `mean z(class B) - mean z(class A)` of
the encoded training digits (openai/glow demo's `get_manipulators` with a class as the
attribute), added to test digits of class A at several strengths.
"""
import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfp_glow import data, plots, runs  # noqa: E402
from tfp_glow.data import labeled  # noqa: E402
from tfp_glow.analysis import latent  # noqa: E402
from tfp_glow.models import FlowConfig  # noqa: E402
from tfp_glow.training import FlowModel  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=None, help="a run directory of `tfp-glow train` on digits")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--source", type=int, default=1)
    p.add_argument("--target", type=int, default=7)
    p.add_argument("--out", default=os.path.join("runs", "examples", "latent_toolkit"))
    args = p.parse_args()

    x, y, _, _ = labeled.load_labeled_split("digits", "train")
    xt, yt, _, _ = labeled.load_labeled_split("digits", "test")
    if args.run:
        model = runs.load_run(args.run)
    else:
        keras.utils.set_random_seed(0)
        model = FlowModel(FlowConfig("glow", (8, 8, 1), {"levels": 2, "steps": 8, "hidden_channels": 128}), n_bits=5)
        model.compile(keras.optimizers.Adam(2e-3), warmup_steps=50)
        model.fit(data.make_dataset(x, 64, drop_remainder=True), epochs=args.epochs, verbose=2)

    rows = []
    for method in latent.INTERPOLATIONS:
        for a, b in ((0, 1), (2, 3)):
            out = latent.interpolate(model, xt[a], xt[b], steps=8, method=method)
            rows.append(out["images"])
    path = os.path.join(args.out, "interpolation.png")
    plots.save_image_grid(path, np.concatenate(rows), cols=8)
    print(f"wrote {path}: rows = linear (2 pairs), spherical (2 pairs); end points are the test digits")

    d = latent.class_direction(model, x, y, args.source, args.target)
    moved = latent.manipulate(model, xt[yt == args.source][:6], d, strengths=(-0.5, 0.0, 0.5, 1.0, 1.5))
    path = os.path.join(args.out, f"manipulate_{args.source}to{args.target}.png")
    plots.save_image_grid(path, moved["images"].reshape(-1, 8, 8, 1), cols=len(moved["strengths"]))
    print(f"wrote {path}: test digits {args.source} moved by alpha * (mean z({args.target}) - mean z({args.source})), "
          f"alpha = {moved['strengths'].tolist()}")

    temps = [(0.0, 0.7), (0.7, 0.7), (1.0, 0.7), (0.7, 0.0), (0.7, 1.0)]
    grid = [model.sample_images(8, seed=3, level_temperatures=t).numpy() for t in temps]
    path = os.path.join(args.out, "temperature_per_level.png")
    plots.save_image_grid(path, np.concatenate(grid), cols=8)
    print(f"wrote {path}: rows = (finest level, top level) temperatures {temps}, same seed")


if __name__ == "__main__":
    main()

"""Likelihood scores for out-of-distribution detection: digits against grey photo patches.

    python examples/ood_scores_digits.py                        # trains a small Glow (~2 min)
    python examples/ood_scores_digits.py --run runs/glow-digits

A flow trained on the 8x8 digits scores the digits' test split and the photos32 test crops
converted to 8x8 grey (`scoring.as_model_images`). Raw bits/dim can rank the smoother photo
patches as *more* likely than digits (Nalisnick et al. 2019); the typicality score `|bpd - H|`
and the complexity-corrected `bpd - PNG bits/dim` (Serra et al. 2020) fix that. Prints the
AUROC of each and writes the histograms. The same is `tfp-glow score RUN digits --ood photos32
--resize`.
"""
import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from tfp_glow import data, runs  # noqa: E402
from tfp_glow.analysis import scoring  # noqa: E402
from tfp_glow.models import FlowConfig  # noqa: E402
from tfp_glow.training import FlowModel  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=None)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--out", default=os.path.join("runs", "examples", "ood_scores"))
    args = p.parse_args()
    if args.run:
        model = runs.load_run(args.run)
    else:
        keras.utils.set_random_seed(0)
        model = FlowModel(FlowConfig("glow", (8, 8, 1), {"levels": 2, "steps": 8, "hidden_channels": 128}), n_bits=5)
        model.compile(keras.optimizers.Adam(2e-3), warmup_steps=50)
        model.fit(data.make_dataset(data.load_digits("train"), 64, drop_remainder=True), epochs=args.epochs, verbose=2)

    reference = scoring.bits_per_dim(model, data.load_digits("validation"))
    digits = scoring.score_table(model, data.load_digits("test"), reference)
    photos = scoring.score_table(model, scoring.as_model_images(data.load_photos32("test"), (8, 8, 1)), reference)
    for score in scoring.SCORES:
        print(f"AUROC {score:>22s}: {scoring.auroc(digits[score], photos[score]):.4f}  (photos = positive)")
    tables = {"digits": digits, "photos32 grey 8x8": photos}
    print("wrote", scoring.write_csv(os.path.join(args.out, "scores.csv"), tables))
    print("wrote", scoring.plot_histograms(os.path.join(args.out, "scores.png"), tables, title="glow on digits"))


if __name__ == "__main__":
    main()

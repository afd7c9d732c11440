"""Likelihood scores for anomaly / out-of-distribution detection, and their AUROC.

Raw likelihood is known to fail here: flows trained on one set can give *higher* likelihood to
simpler images from another (Nalisnick et al. 2019). Besides bits/dim, this module offers:

* the typicality score `|bpd(x) - H|`, where `H` is the mean bits/dim of held-out
  in-distribution data (Nalisnick, Matsukawa, Teh & Lakshminarayanan 2019): the in-distribution
  data sit in the typical set, at bits/dim near `H`, not at the mode. `typicality_test` is the
  batch test of that paper: a batch of `M` examples is flagged when `|mean bpd - H|` exceeds
  the bootstrapped `1 - alpha` quantile `epsilon` of in-distribution batches.
* the complexity-corrected score `S(x) = bpd(x) - L(x)` of Serra et al. 2020, with `L(x)` the
  PNG-compressed length of the image (at the model's bit depth) in bits/dim: how much better
  the model does than a generic compressor; large `S` means out of distribution.

Every score is oriented so that larger means "more likely out of distribution", and
`auroc(in, out)` is the probability that a random out-of-distribution example scores above a
random in-distribution one (ties count one half; the Mann-Whitney statistic).

References:
  Nalisnick et al., "Do Deep Generative Models Know What They Don't Know?", ICLR 2019.
  Nalisnick et al., "Detecting Out-of-Distribution Inputs to Deep Generative Models Using
  Typicality", arXiv:1906.02994, 2019.
  Serra et al., "Input Complexity and Out-of-distribution Detection with Likelihood-based
  Generative Models", ICLR 2020.
"""
import csv
import os

import numpy as np
import tensorflow as tf

from tfp_glow.numerics import averaging
from tfp_glow import data as data_lib
from tfp_glow.extras import require

__all__ = ["SCORES", "as_model_images", "auroc", "bits_per_dim", "complexity_corrected", "png_bits_per_dim",
           "score_table", "typicality_scores", "typicality_test", "write_csv", "plot_histograms"]

#: The per-example scores `score_table` computes, larger = more out of distribution.
SCORES = ("bits_per_dim", "typicality", "complexity_corrected")


def bits_per_dim(model, x, labels=None, batch_size=256):
    """Per-example bits/dim of raw data `x` with the model's fixed evaluation noise.

    A class-conditional model scores `log p(x | y)` with labels, else the marginal
    `log p(x) = logsumexp_y log p(x | y) + log p(y)`. A model with a weight average on scores
    with the averaged weights, as its `evaluate` does.
    """
    x = np.asarray(x)
    if labels is not None and not getattr(model, "num_classes", 0):
        raise ValueError("labels given to an unconditional model; score its images alone.")
    out = []
    with averaging.averaged_weights(model):
        for i in range(0, len(x), batch_size):
            xb = tf.constant(x[i:i + batch_size])
            if labels is None:
                res = model.predict_step(xb)
            else:
                res = model.predict_step((xb, tf.constant(model.check_labels(labels[i:i + batch_size]))))
            out.append(np.asarray(res["bits_per_dim"]))
    return np.concatenate(out)


def png_bits_per_dim(x, n_bits=8):
    """PNG-compressed length (`tf.io.encode_png`, compression 9) of each image in bits/dim.

    The image is compressed at the model's bit depth (its pixel levels `0..2^n_bits - 1`, one
    byte each), so `L(x)` and the model's bits/dim measure the same discrete data.

    Args:
      x: uint8 images `[N, H, W, C]` (C = 1 or 3).
      n_bits: the bit depth the model sees.
    """
    x = np.asarray(x)
    levels = tf.cast(data_lib.reduce_bits(tf.constant(x), n_bits), tf.uint8)
    d = float(np.prod(x.shape[1:]))
    return np.array([8.0 * len(tf.io.encode_png(img, compression=9).numpy()) / d for img in levels])


def complexity_corrected(bpd, png_bpd):
    """Serra et al.'s `S(x) = bpd(x) - L(x)` (both in bits/dim)."""
    return np.asarray(bpd) - np.asarray(png_bpd)


def typicality_scores(bpd, reference_bpd):
    """`|bpd(x) - H|` with `H` the mean bits/dim of held-out in-distribution data (batch size 1)."""
    return np.abs(np.asarray(bpd) - float(np.mean(reference_bpd)))


def typicality_test(bpd, reference_bpd, batch=8, alpha=0.01, n_bootstrap=2000, seed=0):
    """Nalisnick et al.'s typicality test on batches of `batch` examples.

    `epsilon` is the `1 - alpha` quantile of `|mean(bpd of M reference examples) - H|` over
    bootstrap batches of the reference data; each consecutive batch of `bpd` is flagged when
    its `|mean - H|` exceeds it.

    Returns:
      dict: `epsilon`, `H`, `batch_scores` (one `|mean - H|` per batch) and `flagged` (bool per batch).
    """
    ref = np.asarray(reference_bpd, np.float64)
    h = float(ref.mean())
    rng = np.random.default_rng(seed)
    boot = np.abs(ref[rng.integers(0, len(ref), size=(n_bootstrap, batch))].mean(axis=1) - h)
    eps = float(np.quantile(boot, 1.0 - alpha))
    scores = np.asarray(bpd, np.float64)
    n = len(scores) // batch
    batch_scores = np.abs(scores[:n * batch].reshape(n, batch).mean(axis=1) - h)
    return {"epsilon": eps, "H": h, "batch_scores": batch_scores, "flagged": batch_scores > eps}


def auroc(scores_in, scores_out):
    """Area under the ROC curve of telling `scores_out` (positives) from `scores_in`: the
    Mann-Whitney `P(s_out > s_in) + P(s_out = s_in) / 2`, from average ranks."""
    s_in, s_out = np.asarray(scores_in, np.float64).ravel(), np.asarray(scores_out, np.float64).ravel()
    if not len(s_in) or not len(s_out):
        raise ValueError("auroc needs at least one example in each set.")
    both = np.concatenate([s_in, s_out])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(len(both))
    sorted_vals = both[order]
    i = 0
    while i < len(both):  # average ranks over ties
        j = i
        while j + 1 < len(both) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i:j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    n_out = len(s_out)
    u = ranks[len(s_in):].sum() - n_out * (n_out + 1) / 2.0
    return float(u / (len(s_in) * n_out))


def as_model_images(x, event_shape):
    """Images converted to the model's `[H, W, C]`: RGB -> gray by luminance (ITU-R 601),
    gray -> RGB by repetition, then an area resize; uint8."""
    x = np.asarray(x, np.float32)
    h, w, c = event_shape
    if x.shape[-1] == 3 and c == 1:
        x = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    elif x.shape[-1] == 1 and c == 3:
        x = np.repeat(x, 3, axis=-1)
    if x.shape[-1] != c:
        raise ValueError(f"cannot convert images with {x.shape[-1]} channels to {c}.")
    if x.shape[1:3] != (h, w):
        x = tf.image.resize(x, [h, w], method="area").numpy()
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)


def score_table(model, x, reference_bpd, labels=None):
    """Every score of `SCORES` for raw images `x`: dict name -> `[N]` (plus `png_bits_per_dim`)."""
    bpd = bits_per_dim(model, x, labels)
    png = png_bits_per_dim(x, model.n_bits)
    return {"bits_per_dim": bpd, "png_bits_per_dim": png, "typicality": typicality_scores(bpd, reference_bpd),
            "complexity_corrected": complexity_corrected(bpd, png)}


def write_csv(path, tables):
    """One row per example: `set, index` and every score; `tables` maps a set's name to its scores."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    columns = ["bits_per_dim", "png_bits_per_dim", "typicality", "complexity_corrected"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["set", "index"] + columns)
        for name, table in tables.items():
            for i in range(len(table["bits_per_dim"])):
                writer.writerow([name, i] + [f"{float(table[c][i]):.6f}" for c in columns])
    return path


def plot_histograms(path, tables, title="", aurocs=None):
    """A PNG with one histogram panel per score, one colour per set.

    Args:
      path: output `.png`.
      tables: `{set name: score_table(...)}`, in-distribution first.
      title: the figure's title.
      aurocs: optional `{score: AUROC}`; each panel's legend then gives its AUROC on the label
        of the last set (the positive one, e.g. `--ood`).
    """
    Figure = require("matplotlib.figure", "plots", "the score histograms").Figure
    FigureCanvasAgg = require("matplotlib.backends.backend_agg", "plots", "the score histograms").FigureCanvasAgg

    fig = Figure(figsize=(4.2 * len(SCORES), 3.6), dpi=100)
    for k, score in enumerate(SCORES):
        ax = fig.add_subplot(1, len(SCORES), k + 1)
        values = np.concatenate([t[score] for t in tables.values()])
        bins = np.linspace(values.min(), values.max(), 40) if values.max() > values.min() else 10
        last = list(tables)[-1]
        for name, table in tables.items():
            label = name
            if aurocs and score in aurocs and name == last and len(tables) > 1:
                label = f"{name} (AUROC {aurocs[score]:.3f})"
            ax.hist(table[score], bins=bins, alpha=0.55, label=label, density=True)
        ax.set_xlabel(score.replace("_", " ") + (" (bits/dim)" if score != "typicality" else " |bpd - H|"))
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path)
    return path

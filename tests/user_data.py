"""A user's own data for the CLI tests: an `.npz` file and a folder of PNGs, tiny and random,
and `in_folder`, which runs code with another working folder."""
import contextlib
import os

import numpy as np
import tensorflow as tf

#: The smallest Glow the CLI trains: one level of one step, 8 channels, no XLA.
TINY = ["--levels", "1", "--steps", "1", "--hidden", "8", "--no-xla", "--epochs", "1", "--verbose", "0"]


def make_npz(path, n=40, channels=1, labels=True, seed=0):
    """`path`: `n` random uint8 images `[8, 8, channels]` under `x` (and two classes under `y`)."""
    rng = np.random.default_rng(seed)
    arrays = {"x": rng.integers(0, 256, (n, 8, 8, channels), dtype=np.uint8)}
    if labels:
        arrays["y"] = np.arange(n) % 2
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, **arrays)
    return str(path)


def make_folder(path, n=30, channels=1, seed=1):
    """`path/NNN.png`: `n` random 8x8 PNGs of `channels` channels."""
    rng = np.random.default_rng(seed)
    os.makedirs(path, exist_ok=True)
    for i in range(n):
        png = tf.io.encode_png(rng.integers(0, 256, (8, 8, channels), dtype=np.uint8))
        tf.io.write_file(os.path.join(path, f"{i:03d}.png"), png)
    return str(path)


@contextlib.contextmanager
def in_folder(path):
    """Runs the block with `path` as the working folder (created), then goes back."""
    before = os.getcwd()
    os.makedirs(path, exist_ok=True)
    os.chdir(path)
    try:
        yield str(path)
    finally:
        os.chdir(before)

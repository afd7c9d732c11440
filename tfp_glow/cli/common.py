"""What the command modules share when they run: opening a run directory and finding its data,
checking a split against a model before any step, and evaluating with fixed noise. Imports TensorFlow (through
tfp_glow), so only the command modules import it, never the parser.
"""
import os

import numpy as np

from tfp_glow import data as data_lib
from tfp_glow import runs
from tfp_glow.numerics import precision
from tfp_glow.cli.options import CLIError, say
from tfp_glow.numerics.precision import float32_for_figures  # noqa: F401 (the commands import it from here)

__all__ = ["load_run", "run_data", "check_given_data", "folder_options", "check_first_batch", "evaluate_data",
           "print_eval", "float32_for_figures"]


def load_run(run_dir):
    """`(model, config)` of a run directory; a missing or broken run is a `CLIError`."""
    try:
        return runs.load_run(run_dir, return_config=True, report=say)
    except (runs.RunError, ValueError, FileNotFoundError) as e:
        raise CLIError(str(e)) from e


def run_data(config, run_dir, given=None):
    """The data source a command reads for a run: `given` (`--data`), else the run's data found
    from any working folder (`runs.locate_data`: absolute, then relative to the run); a
    `CLIError` naming `--data` when it is at neither place."""
    if given:
        return given
    try:
        return runs.locate_data(config, run_dir)
    except runs.RunError as e:
        raise CLIError(str(e)) from e


def check_given_data(config, info, given):
    """With `--data` given: a `CLIError` unless its shape and bit depth are the run's
    (`runs.check_data_matches`)."""
    if given:
        try:
            runs.check_data_matches(config, info, given)
        except runs.RunError as e:
            raise CLIError(str(e)) from e


def folder_options(config, name):
    """`{image_size, grayscale}` as the run read its images, for an image folder `name` (the
    model's shape depends on them); `{}` for any other source."""
    if runs.is_builtin(name) or not os.path.isdir(name):
        return {}
    return {"image_size": tuple(config["image_size"]) if config.get("image_size") else None,
            "grayscale": bool(config.get("grayscale"))}


def check_first_batch(model, x, what):
    """Checks the first examples of a split against the model before any training step.

    Raises:
      ValueError: an empty split, or examples the model cannot take (named by `what`).
    """
    if hasattr(x, "element_spec"):
        batch = [e for e in x.take(16)]
        if not batch:
            raise ValueError(f"the {what} data set is empty")
        first = np.stack([np.asarray(b) for b in batch])
    else:
        if len(x) == 0:
            raise ValueError(f"the {what} data set is empty")
        first = x[:256]
    try:
        model.check_batch(first)
    except ValueError as e:
        raise ValueError(f"{what} data: {e}") from e
    return first


def evaluate_data(model, x, batch_size):
    """`{"nll", "bits_per_dim"}` of `x` with fixed noise (deterministic batches)."""
    ds = data_lib.make_dataset(x, batch_size, shuffle=False)
    return model.evaluate(ds, verbose=0, return_dict=True)


def print_eval(split, result, image):
    """Prints the nll and the bits/dim of `result`; returns the bits/dim."""
    bpd = float(result["bits_per_dim"])
    nll = float(result["nll"])
    if image:
        say(f"{split} nll: {nll:.4f} nats/example")
    else:
        say(f"{split} nll: {nll:.4f} nats/example (continuous density)")
    say(f"{split} bits/dim: {bpd:.4f}")
    return bpd

"""Where a run's data lives: config.json's record of it, finding it again from any folder, and
checking data that replaces it.

A built-in source (`digits`, a toy set, `mnist`, `tfds:NAME`) is recorded by its name. A user's
`.npz` file or image folder is recorded resolved: `data` is its absolute path and
`data_relative` the same path relative to the run directory, so the run finds its data from
any working folder, and again after the run directory and its data moved together.
`data_shape` and `data_bits` (shape of one example, bits per channel of the stored data) are
what data pointed at with `--data` must match.
"""
import os

from tfp_glow import data as data_lib
from tfp_glow.data import splits
from tfp_glow.runs.layout import RunError

__all__ = ["DataNotFoundError", "is_builtin", "data_entries", "locate_data", "check_data_matches"]


class DataNotFoundError(RunError):
    """The data a run's config.json records is at none of the places it names."""


def is_builtin(name):
    """Whether `name` is a source known by its name (offline, toy, TensorFlow Datasets), not a path."""
    name = os.fspath(name)
    return (name in data_lib.OFFLINE_IMAGE_NAMES or name in data_lib.TOY_NAMES or name.startswith("tfds:")
            or name in splits.TFDS_SHORTCUTS)


def data_entries(name, run_dir, info=None):
    """config.json's entries for the data source `name` of the run in `run_dir`.

    Args:
      name: the source as given (a built-in name, or a path relative to the working folder).
      run_dir: the run directory.
      info: optional `tfp_glow.data.DataInfo` of the source (adds `data_shape`, `data_bits`).

    Returns:
      `{"data": name}` for a built-in source, else `{"data": absolute path, "data_relative":
      path relative to run_dir}`; with `info`, also `data_shape` and `data_bits`.
    """
    name = os.fspath(name)
    entries = {"data": name}
    if not is_builtin(name):
        absolute = os.path.abspath(name)
        entries = {"data": absolute, "data_relative": os.path.relpath(absolute, os.path.abspath(run_dir))}
    if info is not None:
        entries.update(data_shape=[None if d is None else int(d) for d in info.shape], data_bits=info.n_bits_native)
    return entries


def _candidates(config, run_dir):
    """Where the recorded data may be: as recorded (absolute; an old run's path as typed, from
    the working folder), then relative to the run directory."""
    places = [config["data"]]
    if config.get("data_relative"):
        places.append(os.path.normpath(os.path.join(os.fspath(run_dir), config["data_relative"])))
    return places


def locate_data(config, run_dir):
    """The run's data source as a name or a path that exists now.

    Raises:
      DataNotFoundError: a path source found at none of its recorded places (the message names
        them and `--data`).
    """
    name = config["data"]
    if is_builtin(name):
        return name
    places = _candidates(config, run_dir)
    for place in places:
        if os.path.exists(place):
            return place
    tried = " or ".join(repr(p) for p in dict.fromkeys(os.path.abspath(p) for p in places))
    raise DataNotFoundError(f"the data of the run in {os.fspath(run_dir)!r} is not found: no {tried}; if it moved, "
                            f"point the run at it with --data PATH.")


def check_data_matches(config, info, name):
    """Raise a `RunError` unless data `name` (its `DataInfo`) has the shape and bit depth of the run's.

    The shape is the model's event shape; the bit depth is the recorded `data_bits` (a run
    recorded without it is checked on its shape only).
    """
    want = [int(d) for d in config["flow_config"]["event_shape"]]
    got = [None if d is None else int(d) for d in info.shape]
    if got != want:
        raise RunError(f"--data {os.fspath(name)!r} holds examples of shape {got}, but the run was trained on "
                       f"{want}.")
    bits = config.get("data_bits")
    if bits is not None and info.n_bits_native != bits:
        raise RunError(f"--data {os.fspath(name)!r} stores {info.n_bits_native}-bit values, but the run's data "
                       f"stored {bits}-bit values.")

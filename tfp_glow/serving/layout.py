"""The SavedModel's layout on disk: its format marker, metadata and TF Serving's version folders.

A tfp_glow SavedModel carries its metadata twice, as JSON: in the string variable
`config_json` (read with TensorFlow alone: `tf.saved_model.load(path).config_json`) and in
`PATH/assets.extra/tfp_glow.json` (read without TensorFlow). Its `"format"` names the layout
of the signatures, `"tfp_glow.saved_model/N"`:

| N | what changed |
|---|---|
| 1 | the first layout |
| 2 | a class-conditional model's `sample` takes rows: `label`, `temperature`, `seed` all `[N]`, row `i` the unconditional `sample`'s row (scalar `temperature` and `seed`, format 1's call, still work and give format 1's numbers) |

Every other signature, input and output is the same in both, so a client written for format 1
works on format 2, and SavedModels of format 1 keep serving as they are (they hold their own
graphs).
"""
import json
import os

import tensorflow as tf

__all__ = ["FORMAT", "FORMAT_PREFIX", "FORMAT_VERSION", "format_version", "metadata", "metadata_variable", "read_metadata",
           "target_path", "versioned_path", "write_metadata"]

FORMAT_PREFIX = "tfp_glow.saved_model/"
FORMAT_VERSION = 2
FORMAT = f"{FORMAT_PREFIX}{FORMAT_VERSION}"
_METADATA_FILE = os.path.join("assets.extra", "tfp_glow.json")


def metadata(model, names, serving_default):
    """The metadata of a SavedModel of `model` with signatures `names` (and `serving_default`)."""
    info = {
        "format": FORMAT,
        "config": model.config_.to_dict(),
        "n_bits": model.n_bits,
        "eval_seed": int(model.eval_seed),
        "event_shape": [int(d) for d in model.event_shape],
        "latent_shape": [int(d) for d in model.latent_shape],
        "num_dims": int(model.num_dims),
    }
    if int(getattr(model, "num_classes", 0) or 0):
        info["num_classes"] = int(model.num_classes)
    info["signatures"] = list(names) + (["serving_default"] if serving_default else [])
    return info


def write_metadata(path, info):
    """Writes `info` to `path/assets.extra/tfp_glow.json`."""
    os.makedirs(os.path.join(path, "assets.extra"), exist_ok=True)
    with open(os.path.join(path, _METADATA_FILE), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2, sort_keys=True)


def format_version(info):
    """`N` of `info["format"] == "tfp_glow.saved_model/N"`.

    Raises:
      ValueError: not a tfp_glow SavedModel's metadata, or a format newer than this code knows.
    """
    fmt = info.get("format") if isinstance(info, dict) else None
    if not (isinstance(fmt, str) and fmt.startswith(FORMAT_PREFIX) and fmt[len(FORMAT_PREFIX):].isdigit()):
        raise ValueError(f"not the metadata of a tfp_glow SavedModel: format {fmt!r}, expected "
                         f"{FORMAT_PREFIX}N.")
    version = int(fmt[len(FORMAT_PREFIX):])
    if version > FORMAT_VERSION:
        raise ValueError(f"this SavedModel has format {fmt}, newer than this tfp_glow knows ({FORMAT}); "
                         f"upgrade tfp_glow to read it (TensorFlow alone still serves it).")
    return version


def read_metadata(saved):
    """The metadata of a tfp_glow SavedModel, with `"format_version"` added.

    Args:
      saved: its directory (read from `assets.extra/tfp_glow.json`, no graph loaded), or the
        object `tf.saved_model.load` returned (read from `config_json`).

    Raises:
      ValueError: not a tfp_glow SavedModel, or a newer format (see `format_version`).
    """
    if hasattr(saved, "config_json"):
        info = json.loads(saved.config_json.numpy().decode("utf-8"))
    else:
        file = os.path.join(os.fspath(saved), _METADATA_FILE)
        if not os.path.isfile(file):
            raise ValueError(f"{os.fspath(saved)!r} is not a tfp_glow SavedModel: it has no {_METADATA_FILE}.")
        with open(file, encoding="utf-8") as f:
            info = json.load(f)
    return {**info, "format_version": format_version(info)}


def versioned_path(path, version):
    """`path/<version>`, TF Serving's layout (`--model_base_path=path` serves the highest).

    Args:
      path: the model's base directory.
      version: an int >= 1, or `"next"`: one more than the highest numbered version already
        in `path` (1 in an empty or new directory).

    Raises:
      ValueError: a bad version.
    """
    path = os.fspath(path)
    if version == "next":
        existing = [int(d) for d in os.listdir(path) if d.isdigit()] if os.path.isdir(path) else []
        return os.path.join(path, str(max(existing, default=0) + 1))
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be an int >= 1 or 'next' (TF Serving's numbered version "
                         f"directories); received {version!r}.")
    return os.path.join(path, str(version))


def target_path(path, version):
    """The directory to write: `path`, or `path/<version>`, which must not exist yet.

    Raises:
      ValueError: a bad version.
      FileExistsError: `path/<version>` exists.
    """
    if version is None:
        return os.fspath(path)
    path = versioned_path(path, version)
    if os.path.exists(path):
        raise FileExistsError(f"{path!r} already exists: TF Serving versions are never overwritten; export "
                              f"a higher version (or version='next').")
    return path


def metadata_variable(info):
    """The `config_json` string variable the SavedModel holds (sorted keys, one line)."""
    return tf.Variable(json.dumps(info, sort_keys=True), trainable=False, name="config_json")

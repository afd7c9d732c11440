"""Data from outside the package: the user's ``.npz`` files and image folders, and TensorFlow Datasets.

``load_npz`` and ``load_image_folder`` return numpy arrays ``uint8 [N, H, W, C]``; ``load_tfds``
returns a ``tf.data.Dataset`` of single ``uint8`` images. Only ``load_tfds`` may download anything.
Image files are decoded by TensorFlow (``tf.io.decode_image``, as Keras'
``image_dataset_from_directory`` does), so no extra is needed for them; tensorflow_datasets is the
``tfds`` extra, imported inside ``load_tfds`` only (slow to import, and most uses need none).
"""
from __future__ import annotations

import difflib
import logging
import os
import socket
import threading
import zipfile
from typing import Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from tfp_glow.data.validation import _is_int, validate_images
from tfp_glow.extras import require

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# ITU-R BT.601 luma, the weights of PIL's "L" mode and of tf.image.rgb_to_grayscale.
_LUMA = np.array([0.299, 0.587, 0.114])


def load_npz(path: Union[str, os.PathLike], key: str = "x") -> np.ndarray:
    """Loads images stored under ``key`` in a ``.npz`` file as ``uint8 [N, H, W, C]``.

    Accepted arrays have shape ``[N, H, W, C]`` or ``[N, H, W]`` (a channel
    axis is appended; a rank-3 array is always read as ``[N, H, W]``) and an
    integer dtype with values in ``[0, 255]``; they are cast to uint8. The
    file is read with ``allow_pickle=False``.

    Args:
      path: path to the ``.npz`` file.
      key: name of the array inside the file.

    Returns:
      ``np.ndarray`` uint8 of shape ``[N, H, W, C]``.

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: ``key`` missing (the message lists the keys present), a
        float/bool/non-numeric dtype, NaN, values outside ``[0, 255]``,
        rank other than 3 or 4, or ``N == 0``.
    """
    path = os.fspath(path)
    keys, x = _read_npz(path, key)
    if key not in keys:
        raise ValueError(f"key {key!r} not found in {path!r}; keys present: {keys}")
    return _npz_array_to_images(x, f"array {key!r} in {path!r}")


def npz_keys(path: Union[str, os.PathLike]) -> list:
    """The array names in a ``.npz`` file, which is checked as :func:`load_npz` does (no pickle)."""
    return _read_npz(os.fspath(path))[0]


def _read_npz(path: str, key: Optional[str] = None):
    """``(keys, array under key or None)`` of a ``.npz`` file, never unpickling anything.

    Raises:
      FileNotFoundError: no such file.
      ValueError: one line, for a file that is not an ``.npz`` archive, cannot be read, or
        whose array needs unpickling (numpy's own message would advise ``allow_pickle=``).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"npz file not found: {path!r}")
    if not zipfile.is_zipfile(path):  # else np.load would try (and advise) unpickling it
        raise ValueError(f"{path!r} is not an .npz file (a zip archive of arrays, as np.savez writes); "
                         f"save the images with np.savez(path, x=images)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.keys())
            x = npz[key] if key in keys else None
        if x is not None and not isinstance(x, np.ndarray):  # numpy hands back a member's raw bytes
            raise ValueError(f"{key!r} in {path!r} is not a numpy array (.npy member)")
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(f"could not read the .npz file {path!r}: {e}") from None
    except ValueError as e:
        if "pickle" not in str(e):
            raise
        # object arrays need unpickling, which can run code: never done, never advised
        raise ValueError(f"array {key!r} in {path!r} is an object array, which is not read; store the "
                         f"images as a numeric (uint8) array") from None
    return keys, x


def _npz_array_to_images(x: np.ndarray, what: str) -> np.ndarray:
    if x.ndim not in (3, 4):
        raise ValueError(
            f"{what} must have shape [N, H, W, C] or [N, H, W]; "
            f"got rank {x.ndim} with shape {x.shape}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{what} is empty: expected N > 0 examples, got shape {x.shape}")
    if np.issubdtype(x.dtype, np.floating):
        if np.isnan(x).any():
            raise ValueError(f"{what} contains NaN; expected integer pixel values in [0, 255]")
        raise ValueError(
            f"{what} must have an integer dtype (uint8 pixel levels in [0, 255]); "
            f"got dtype {x.dtype}"
        )
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(
            f"{what} must have an integer dtype (uint8 pixel levels in [0, 255]); "
            f"got dtype {x.dtype}"
        )
    if x.ndim == 3:
        x = x[..., None]
    return validate_images(x, name=what)


def load_image_folder(
    path: Union[str, os.PathLike],
    image_size: Optional[Tuple[int, int]] = None,
    grayscale: bool = False,
) -> np.ndarray:
    """Reads every image in a folder (sorted by file name) as ``uint8 [N, H, W, C]``.

    Files with extension ``.png``, ``.jpg``, ``.jpeg``, ``.bmp`` or ``.gif`` (any case; a GIF's
    first frame) directly inside ``path`` are decoded with ``tf.io.decode_image``, the decoder
    of Keras' ``image_dataset_from_directory``; other files and sub-directories are ignored (a
    folder's ``train``/``validation``/``test`` sub-folders are splits, see ``get_source``).
    Images are converted to RGB (``C = 3``; alpha dropped), or with ``grayscale`` to one channel
    ``round(0.299 R + 0.587 G + 0.114 B)`` (ITU-R BT.601 luma, as PIL's ``"L"`` mode).

    Args:
      path: directory containing the images.
      image_size: optional ``(H, W)``; when given every image is resized to it (bilinear,
        antialiased when shrinking, ``tf.image.resize``). Otherwise all images must share one size.
      grayscale: read images as one-channel grayscale.

    Returns:
      ``np.ndarray`` uint8 of shape ``[N, H, W, C]`` with ``C`` 1 or 3.

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: ``path`` is not a directory, contains no image files, an
        image cannot be decoded, sizes differ (without ``image_size``), or
        ``image_size`` is not a pair of positive ints.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"image folder not found: {path!r}")
    if not os.path.isdir(path):
        raise ValueError(f"expected a directory of images; {path!r} is not a directory")
    if image_size is not None:
        if (
            not isinstance(image_size, (tuple, list))
            or len(image_size) != 2
            or not all(_is_int(s) and s > 0 for s in image_size)
        ):
            raise ValueError(f"image_size must be a pair of positive ints (H, W); got {image_size!r}")
        image_size = (int(image_size[0]), int(image_size[1]))

    files = sorted(
        f
        for f in os.listdir(path)
        if f.lower().endswith(_IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(path, f))
    )
    if not files:
        raise ValueError(
            f"no image files ({', '.join(_IMAGE_EXTENSIONS)}) found in folder {path!r}"
        )
    arrays = []
    first_size = None
    for f in files:
        full = os.path.join(path, f)
        try:
            img = tf.io.decode_image(tf.io.read_file(full), channels=3, expand_animations=False)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as e:
            raise ValueError(f"could not read image {full!r}: {e.message.splitlines()[0]}") from e
        arr = img.numpy()
        if image_size is not None and arr.shape[:2] != image_size:
            arr = tf.image.resize(arr, image_size, method="bilinear", antialias=True).numpy()
        if grayscale:
            arr = (arr.astype(np.float64) @ _LUMA)[..., None]
        arr = np.clip(np.floor(arr + 0.5), 0, 255).astype(np.uint8) if arr.dtype != np.uint8 else arr
        if first_size is None:
            first_size = (arr.shape[0], arr.shape[1], files[0])
        elif arr.shape[:2] != first_size[:2]:
            raise ValueError(
                f"all images must share one size (or pass image_size=(H, W); --image-size H W on "
                f"the command line); {first_size[2]!r} is {first_size[0]}x{first_size[1]} (HxW) but "
                f"{f!r} is {arr.shape[0]}x{arr.shape[1]}"
            )
        arrays.append(arr)
    return np.stack(arrays, axis=0)


def load_tfds(name: str, split: str = "train", data_dir: Optional[str] = None) -> tf.data.Dataset:
    """``tfds.load(name, split=split, data_dir=data_dir)`` mapped to its ``image`` feature.

    Only this function (and :func:`get_source` for TFDS names) may download
    data, through TensorFlow Datasets.

    Args:
      name: a TFDS builder name, e.g. ``"mnist"`` or ``"cifar10"``
        (optionally with a version/config, as accepted by ``tfds.load``).
      split: a TFDS split expression, e.g. ``"train"``, ``"test"`` or
        ``"train[:90%]"``.
      data_dir: TFDS data directory (``None`` for the TFDS default).

    Returns:
      ``tf.data.Dataset`` of single uint8 images of shape ``[H, W, C]``
      (a channel axis is added to rank-2 images).

    Raises:
      MissingExtraError: tensorflow_datasets is not installed (the ``tfds`` extra).
      ValueError: ``name`` is not a TFDS dataset (see ``tfds.list_builders()``),
        or it has no integer ``image`` feature.
      RuntimeError: the dataset could not be loaded or downloaded (e.g. no
        internet); the original error is chained and quoted.
    """
    tfds = require("tensorflow_datasets", "tfds", f"the TensorFlow Datasets source {name!r}")
    return _tfds_images(_tfds_dataset(tfds, name, split, data_dir), name)


def _tfds_dataset(tfds, name, split, data_dir):
    """``tfds.load(...)``: prepared data without the network, else a download after a brief
    probe of the server; errors as :func:`load_tfds` documents them."""
    try:
        try:  # data already prepared (or mocked): no download, no network
            ds = _quietly(lambda: tfds.load(name, split=split, data_dir=data_dir, download=False))
        except tfds.core.registered.DatasetNotFoundError:
            raise
        except Exception as not_prepared:
            # tfds retries an unreachable server for minutes: probe it once, briefly, first
            reason = probe_network()
            if reason is not None:
                raise _Unreachable(
                    f"TFDS dataset {name!r} is not prepared in data_dir {data_dir!r} and cannot be "
                    f"downloaded: {reason}. Without internet access, use the offline 'digits' data, "
                    f"pass --data-dir with the prepared data, or your own images with --data path.npz "
                    f"(or an image folder).") from not_prepared
            ds = tfds.load(name, split=split, data_dir=data_dir)
    except _Unreachable:
        raise
    except tfds.core.registered.DatasetNotFoundError as e:
        base = name.split("/")[0].split(":")[0]
        try:
            close = difflib.get_close_matches(base, tfds.list_builders(), n=3)
        except Exception:  # pragma: no cover - suggestions are best effort
            close = []
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(
            f"unknown TFDS dataset {name!r}; see tfds.list_builders() for the "
            f"available names.{hint}"
        ) from e
    except Exception as e:
        raise RuntimeError(
            f"could not load or download TFDS dataset {name!r} (split {split!r}, "
            f"data_dir {data_dir!r}): {type(e).__name__}: {e}. Without internet "
            "access, use the offline 'digits' data or pass your own images with "
            "--data path.npz (or an image folder)."
        ) from e
    return ds


def _tfds_images(ds, name):
    """The ``image`` feature of a TFDS dataset as single uint8 images ``[H, W, C]``, checked."""
    spec = ds.element_spec
    if not isinstance(spec, dict) or "image" not in spec:
        keys = list(spec.keys()) if isinstance(spec, dict) else type(spec).__name__
        raise ValueError(f"TFDS dataset {name!r} has no 'image' feature; its features are {keys}")
    image_spec = spec["image"]
    if not image_spec.dtype.is_integer:
        raise ValueError(
            f"TFDS dataset {name!r} has image dtype {image_spec.dtype.name}; "
            "expected integer pixel levels (uint8)"
        )
    if image_spec.shape.rank not in (2, 3):
        raise ValueError(
            f"TFDS dataset {name!r} has image shape {image_spec.shape}; "
            "expected [H, W, C] or [H, W]"
        )
    add_channel = image_spec.shape.rank == 2

    def _image(example):
        img = tf.cast(example["image"], tf.uint8)
        return img[..., None] if add_channel else img

    return ds.map(_image, num_parallel_calls=tf.data.AUTOTUNE)


class _Unreachable(RuntimeError):
    """The data must be downloaded and the download server does not answer."""


#: Where `probe_network` connects (TFDS downloads and its metadata come from Google storage).
PROBE_ADDRESS = ("storage.googleapis.com", 443)


def probe_network(address=None, timeout=3.0):
    """None if a TCP connection to `address` opens within `timeout` seconds, else the reason.

    The connection (name lookup included, which a socket timeout does not bound) runs in a
    daemon thread that is abandoned after `timeout`, so this returns within about `timeout`
    seconds whatever the network does.
    """
    host, port = address or PROBE_ADDRESS
    result = {}

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result["ok"] = True
        except OSError as e:
            result["error"] = e

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if result.get("ok"):
        return None
    if "error" in result:
        return f"{host}:{port} is unreachable ({result['error']})"
    return f"{host}:{port} did not answer within {timeout:g} s"


def _quietly(fn):
    """`fn()` with the absl logger (tfds' warnings about the folders it looks into) at ERROR."""
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        return fn()
    finally:
        absl.setLevel(level)

"""Data sources, tf.data pipelines and dequantization helpers for tfp_glow.

What this subpackage holds, one module a concern:

* ``sources``: the offline image sets (``load_digits``, ``load_digits28``, ``load_photos32``)
  and ``get_source``, the dispatcher by name used by the CLI, with ``DataInfo``;
* ``toys``: the 2-D toy densities (``toy_2d``, ``TOY_NAMES``);
* ``external``: the user's ``.npz`` files and image folders, and TensorFlow Datasets
  (``load_npz``, ``load_image_folder``, ``load_tfds``);
* ``validation``: ``validate_images`` and ``validate_vectors`` (numpy only);
* ``pipeline``: ``make_dataset``, the batched ``tf.data`` input pipeline;
* ``quantization``: ``reduce_bits``, ``dequantize``, ``to_uint8``.

What it may import: numpy, TensorFlow and tfp_glow.extras at module level; scikit-learn and
tensorflow_datasets (extras) only inside the loaders that need them, through extras.require.
Nothing else of tfp_glow: data sits beside bijectors, models and training, which import it,
and it imports none of them. Within the subpackage the modules import each other directly,
never this ``__init__``: ``validation`` imports none of them, the others import ``validation``,
and ``sources`` also imports ``external`` and ``toys``.

Every public name lives in one module and is re-exported here, so ``from tfp_glow import data``
then ``data.load_digits(...)`` is the way to use it.

Conventions used throughout the package:

* images are channels-last ``uint8`` arrays of shape ``[N, H, W, C]``;
* vectors (e.g. the 2-D toy sets) are ``float32`` arrays of shape ``[N, D]``.

Sources (``load_digits``, ``toy_2d``, ``load_npz``, ``load_image_folder``)
return numpy arrays; ``load_tfds`` returns a ``tf.data.Dataset`` of single
``uint8`` images. ``get_source`` is the single dispatcher used by the CLI and
returns the data together with a :class:`DataInfo`.

The pixel helpers (``reduce_bits``, ``dequantize``, ``to_uint8``) are pure
TensorFlow ops: they work on batches whose size is only known at run time and
can be used inside ``tf.function(jit_compile=True)``.

Nothing in this subpackage downloads anything, except ``tfds.load`` for users who
ask for a TensorFlow Datasets name and have internet access.
"""
from tfp_glow.data.external import load_image_folder, load_npz, load_tfds
from tfp_glow.data.pipeline import make_dataset
from tfp_glow.data.quantization import dequantize, reduce_bits, to_uint8
from tfp_glow.data.sources import (DIGITS_SPLITS, OFFLINE_IMAGE_NAMES, DataInfo, get_source, load_digits,
                                   load_digits28, load_photos32)
from tfp_glow.data.toys import TOY_NAMES, toy_2d
from tfp_glow.data.validation import validate_images, validate_vectors

__all__ = [
    "DataInfo",
    "DIGITS_SPLITS",
    "TOY_NAMES",
    "load_digits",
    "load_digits28",
    "load_photos32",
    "OFFLINE_IMAGE_NAMES",
    "toy_2d",
    "load_npz",
    "load_image_folder",
    "load_tfds",
    "get_source",
    "validate_images",
    "validate_vectors",
    "make_dataset",
    "reduce_bits",
    "dequantize",
    "to_uint8",
]

"""Helpers every builder shares to assemble a flow: argument checks, chaining and flattening.

`_check_image_shape` and `_check_num_classes` validate builder arguments; `_chain` makes a
`Chain` from bijectors listed data -> latent; `_flatten` is the `[H, W, C]` -> `[D]` reshape
the vector flows (NSF, MAF) start with on images.
"""
import numpy as np
import tensorflow_probability as tfp

from tfp_glow.bijectors import Chain

tfb = tfp.bijectors


def _check_image_shape(event_shape, levels, who):
    if len(event_shape) != 3:
        raise ValueError(f"{who} on images expects event shape [H, W, C]; received {list(event_shape)}.")
    h, w, _ = event_shape
    f = 2 ** levels
    if h % f or w % f:
        raise ValueError(
            f"{who} with {levels} levels squeezes {levels} times and needs H and W divisible by "
            f"{f}; received image shape {list(event_shape)}.")


def _check_num_classes(num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 0 \
            or num_classes == 1:
        raise ValueError(f"num_classes must be 0 (unconditional) or an int >= 2; received {num_classes!r}.")


def _chain(data_to_latent, name):
    """A chain from bijectors listed in the data -> latent order (eager-safe `Chain`)."""
    return Chain(list(data_to_latent), name=name)


def _flatten(event_shape, d):
    """Data -> latent: `[H, W, C]` -> `[D]` (nothing for vectors)."""
    if len(event_shape) == 1:
        return []
    return [tfb.Reshape(event_shape_out=list(event_shape), event_shape_in=[d], name="flatten")]

"""The distribution around a flow: the standard-normal base, `_distribution` and `count_parameters`.

`_distribution` wraps a builder's bijector in `TransformedDistribution(N(0, I), bijector)`
(with `CheckInput`s at both ends under `validate_args`); `standard_normal` is the tempered
base; `count_parameters` counts a distribution's trainable scalars.
"""
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow.bijectors import Chain
from tfp_glow.bijectors.validation import CheckInput

tfd = tfp.distributions


def standard_normal(event_shape, dtype=tf.float32, scale=1.0):
    """`N(0, scale^2 I)` over `event_shape`; `scale` is the sampling temperature."""
    return tfd.Sample(tfd.Normal(tf.zeros([], dtype), tf.cast(scale, dtype)), list(event_shape))


def _latent_shape(bijector, event_shape):
    return tuple(tf.TensorShape(bijector.inverse_event_shape(event_shape)).as_list())


def _distribution(bijector, event_shape, dtype, name, validate_args=False):
    """`TransformedDistribution(N(0, I), bijector)`; with `validate_args`, a `CheckInput` at
    each end of the flow asserts finite inputs of the right event shape (data into `inverse`,
    latents into `forward`), and TFP's own checks are on in the distributions."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string; received {name!r}.")
    if not isinstance(validate_args, bool):
        raise ValueError(f"validate_args must be True or False; received {validate_args!r}.")
    latent_shape = _latent_shape(bijector, event_shape)
    if validate_args:
        bijector = Chain([CheckInput(event_shape, "inverse", "data", dtype=dtype, name=f"{name}_check_data"),
                          bijector,
                          CheckInput(latent_shape, "forward", "latent", dtype=dtype, name=f"{name}_check_latent")],
                         validate_args=True, name=f"{name}_validated")
    base = tfd.Sample(tfd.Normal(tf.zeros([], dtype), tf.ones([], dtype), validate_args=validate_args),
                      list(latent_shape), validate_args=validate_args)
    return tfd.TransformedDistribution(base, bijector, validate_args=validate_args, name=name)


def count_parameters(distribution):
    """Number of trainable scalars of a distribution (`tf.Module` view)."""
    return int(sum(np.prod(v.shape) for v in distribution.trainable_variables))

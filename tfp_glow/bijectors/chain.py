"""`tfb.Chain` with a cache that is safe in eager training loops."""
from tensorflow_probability.python.bijectors import chain as chain_lib
from tensorflow_probability.python.internal import cache_util

from tfp_glow.bijectors._util import _graph_only


# `tfb.Chain(...)` itself builds a `_Chain` whenever a part is not a CompositeTensor (ours
# hold Keras layers), so that is the class to extend.
class Chain(chain_lib._Chain):
    """`tfb.Chain([b1, ..., bn])`: `forward(z) = b1(...bn(z))`, `log|det J| = sum of the parts`.

    Identical to TFP's, except that results are cached inside graphs (`tf.function`) only:
    TFP's cache is keyed on the input tensor object, so an eager loop that reuses its batch
    tensor after a parameter update would otherwise get the old latent back.

    Args:
      bijectors: list of bijectors, listed data -> latent for `inverse`.
      validate_args: TFP flag.
      name: name scope.

    References:
      `tfp.bijectors.Chain`.
    """

    _cache = _graph_only(cache_util.BijectorCache, returns_attrs=False)()

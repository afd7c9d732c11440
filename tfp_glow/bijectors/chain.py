"""`tfb.Chain` with a cache that is safe in eager training loops."""
from tensorflow_probability.python.bijectors import chain as chain_lib
from tensorflow_probability.python.internal import cache_util

from tfp_glow.bijectors._util import _graph_only
from tfp_glow.bijectors.conditioning import member_kwargs


# `tfb.Chain(...)` itself builds a `_Chain` whenever a part is not a CompositeTensor (ours
# hold Keras layers), so that is the class to extend.
class Chain(chain_lib._Chain):
    """`tfb.Chain([b1, ..., bn])`: `forward(z) = b1(...bn(z))`, `log|det J| = sum of the parts`.

    Identical to TFP's, except that results are cached inside graphs (`tf.function`) only:
    TFP's cache is keyed on the input tensor object, so an eager loop that reuses its batch
    tensor after a parameter update would otherwise get the old latent back. And a
    `conditional_input=c` given to the chain reaches every conditional member, nested chains
    and `tfb.Invert` included (TFP's routes keyword arguments by member name only, TFP#1410;
    its by-name dicts still work): `chain.forward(z, conditional_input=c)`, so
    `dist.log_prob(x, bijector_kwargs={"conditional_input": c})`.

    Args:
      bijectors: list of bijectors, listed data -> latent for `inverse`.
      validate_args: TFP flag.
      name: name scope.

    References:
      `tfp.bijectors.Chain`.
    """

    _cache = _graph_only(cache_util.BijectorCache, returns_attrs=False)()

    def _walk_forward(self, step_fn, x, **kwargs):
        for bij in reversed(self._bijectors):
            x = step_fn(bij, x, **member_kwargs(bij, kwargs))
        return x

    def _walk_inverse(self, step_fn, y, **kwargs):
        for bij in self._bijectors:
            y = step_fn(bij, y, **member_kwargs(bij, kwargs))
        return y

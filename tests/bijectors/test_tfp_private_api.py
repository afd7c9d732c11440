"""Every private TensorFlow Probability symbol tfp_glow relies on, pinned in one place.

TFP may change its internals in any release. If an upgrade breaks one of these, this file
fails first and says which symbol and why we need it, instead of a distant test failing with
an AttributeError deep inside a bijector.
"""
import inspect

import pytest
import tensorflow_probability as tfp
from tensorflow_probability.python.bijectors import chain as chain_lib
from tensorflow_probability.python.bijectors import invert as invert_lib
from tensorflow_probability.python.internal import cache_util

import tfp_glow as tg

tfb = tfp.bijectors


def test_tfb_chain_builds_the_private_chain_base():
    # bijectors/chain.py subclasses `_Chain` and bijectors/walk.py type-checks against it:
    # `tfb.Chain(...)` returns a `_Chain` (not a `tfb.Chain`) when a part is not a
    # CompositeTensor, which ours are not (they hold Keras layers).
    assert inspect.isclass(chain_lib._Chain)
    built = tfb.Chain([tg.ActNorm(2), tfb.Shift(1.0)])
    assert isinstance(built, chain_lib._Chain)
    assert issubclass(tg.bijectors.Chain, chain_lib._Chain)
    # walk.py reads the parts in forward order from `.bijectors`
    assert [type(b) for b in built.bijectors] == [tg.ActNorm, type(tfb.Shift(1.0))]


def test_tfb_invert_builds_the_private_invert_base():
    # bijectors/walk.py type-checks `tfb.Invert(...)` against `_Invert` and reads `.bijector`.
    inv = tfb.Invert(tg.Squeeze())
    assert isinstance(inv, invert_lib._Invert)
    assert isinstance(inv.bijector, tg.Squeeze)


@pytest.mark.parametrize("name", ["BijectorCache", "BijectorCacheWithGreedyAttrs"])
def test_cache_util_classes_and_the_hooks_we_override(name):
    # bijectors/_util.py subclasses both caches (`_graph_only`) to skip caching eagerly, and
    # overrides `_lookup(input, forward_name, inverse_name, **kwargs)` and
    # `_attributes(input, fn_name, **kwargs)`; the greedy cache is built with
    # `forward_name=` / `inverse_name=` and read with `forward_attributes` /
    # `inverse_attributes`.
    cls = getattr(cache_util, name)
    assert list(inspect.signature(cls._lookup).parameters)[:4] == ["self", "input", "forward_name", "inverse_name"]
    assert list(inspect.signature(cls._attributes).parameters)[:3] == ["self", "input", "fn_name"]
    if name == "BijectorCacheWithGreedyAttrs":
        params = inspect.signature(cls.__init__).parameters
        assert "forward_name" in params and "inverse_name" in params
        assert hasattr(cls, "forward_attributes") and hasattr(cls, "inverse_attributes")


def test_bijectors_read_their_cache_from_the_class_attribute():
    # TFP's Bijector looks the cache up as `self._cache`; our mixins replace that attribute.
    assert isinstance(tfb.Bijector.__dict__.get("_cache"), cache_util.BijectorCache)
    assert isinstance(tg.ActNorm(2)._cache, cache_util.BijectorCache)
    assert isinstance(tg.AffineCoupling((4,), mask="half")._cache, cache_util.BijectorCacheWithGreedyAttrs)


def test_tfp_bundled_tf_keras_for_the_tfb_glow_baseline():
    # bench baselines rebuild tfb.Glow / tfb.RealNVP with TFP's bundled Keras 2 (`tf_keras`),
    # since Keras 3 does not track their variables.
    from tensorflow_probability.python.internal import tf_keras

    assert hasattr(tf_keras, "layers") and hasattr(tf_keras.optimizers, "Adam")

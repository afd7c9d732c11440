"""Find the Keras layers held anywhere inside a bijector or distribution."""
import keras
import tensorflow as tf


def keras_layers(module):
    """Every distinct `keras.Layer` reachable from a `tf.Module` (bijector, distribution).

    A Keras model assigns this list to an attribute so Keras tracks the flow's weights
    (`model.trainable_variables`, checkpoints, `fit`); TFP's `tf.Module` view tracks the same
    variables through each bijector's exposed `tf.Variable`s.

    Args:
      module: a `tf.Module`, e.g. a `tfd.TransformedDistribution` or a `tfb.Chain`.

    Returns:
      A list of `keras.Layer`, in a deterministic (attribute-walk) order, without duplicates.
    """
    found, seen = [], set()
    for layer in module._flatten(predicate=lambda v: isinstance(v, keras.Layer), expand_composites=False):
        if id(layer) not in seen:
            seen.add(id(layer))
            found.append(layer)
    return found

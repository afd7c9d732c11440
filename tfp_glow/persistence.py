"""Keras-side persistence checks (placeholder until the export work lands)."""


def check_weights_compatible(model, filepath):
    """Raise `ValueError` if `filepath` holds weights of another configuration than `model`."""
    return None

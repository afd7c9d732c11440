"""Optional dependencies: which `pip install "tfp_glow[EXTRA]"` brings what, and a clear error
when one is missing.

The core install (`pip install tfp_glow`) needs TensorFlow, TensorFlow Probability, Keras and
numpy only. Everything else is an extra of setup.py, imported only inside the function that
needs it, through `require`:

    tfds         tensorflow_datasets (the `mnist`, `cifar10`, `tfds:NAME` data)
    plots        matplotlib (density figures, training curves)
    photos       scikit-learn and pillow (the `photos32` data: scikit-learn's sample photographs)
    tensorboard  tensorboard (Keras' TensorBoard callback; the CLI skips `logs/` without it)

Standard library only, and it imports no tfp_glow module: every layer may use it.
"""
import importlib

__all__ = ["EXTRAS", "MissingExtraError", "require", "available"]

#: extra -> the top-level modules it provides (what `require` may be asked for).
EXTRAS = {
    "tfds": ("tensorflow_datasets",),
    "plots": ("matplotlib",),
    "photos": ("sklearn", "PIL"),
    "tensorboard": ("tensorboard",),
}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra that brings it.

    Attributes:
      extra: the setup.py extra, e.g. `"plots"`.
      module: the module that could not be imported, e.g. `"matplotlib"`.
    """

    def __init__(self, module, extra, purpose):
        self.extra, self.module = extra, module
        super().__init__(f"{purpose} needs the optional package {module!r}, which is not installed: "
                         f"pip install \"tfp_glow[{extra}]\" (or \"tfp_glow[all]\")", name=module)


def require(module, extra, purpose):
    """`importlib.import_module(module)`, or `MissingExtraError` naming `extra` if it is missing.

    Only a missing top-level package becomes a `MissingExtraError`; an installed package that
    lacks the submodule (a broken or too old installation) raises its own error unchanged.

    Args:
      module: dotted module name, e.g. `"matplotlib.figure"`.
      extra: the setup.py extra that installs it (a key of `EXTRAS`).
      purpose: what needs it, for the message, e.g. `"plot_density_2d"`.

    Returns:
      The imported module.
    """
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known extras: {sorted(EXTRAS)}")
    top = module.split(".")[0]
    try:
        importlib.import_module(top)
    except ModuleNotFoundError as e:
        if e.name == top:
            raise MissingExtraError(top, extra, purpose) from e
        raise
    return importlib.import_module(module)


def available(module):
    """Whether `module` can be imported (without importing it, when it is not loaded yet)."""
    import sys
    from importlib.util import find_spec

    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False

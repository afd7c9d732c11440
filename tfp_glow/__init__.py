"""tfp_glow: NICE, RealNVP and Glow as TensorFlow Probability bijectors, trainable with Keras 3.

Importing the package is cheap: its submodules and the names it re-exports load on first use
(`tg.FlowModel`, `tg.data`, `from tfp_glow import glow`), for start-up time: `tfp-glow --help`
(tfp_glow.cli) builds its parser without TensorFlow. Keras knows the saved `FlowModel` class
once `tfp_glow.training` is imported: touch `tg.FlowModel` (or `import tfp_glow.training`)
before `keras.models.load_model` of a `.keras` file.
"""
import importlib
import os

# Quiet TensorFlow's C++ start-up chatter unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns its oneDNN CPU kernels on by default only on some Intel CPUs; elsewhere
# they make a Glow train step much faster (docs/design.md, Speed; docs/measurements/speed.md).
# It takes effect only if TensorFlow is not imported yet; a user's own setting wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

_SUBMODULES = ("bijectors", "data", "models", "networks", "training")
_REEXPORTS = {  # name -> the submodule it comes from
    **dict.fromkeys(("ActNorm", "AdditiveCoupling", "AffineCoupling", "DiagonalScale", "InvertibleConv1x1",
                     "LearnedPrior", "MaskedAutoregressive", "Split", "SplineCoupling", "Squeeze",
                     "initialize_actnorm"), "bijectors"),
    **dict.fromkeys(("FlowConfig", "glow", "maf", "nice", "nsf", "realnvp"), "models"),
    "FlowModel": "training",
}

__all__ = [
    "ActNorm", "AdditiveCoupling", "AffineCoupling", "DiagonalScale", "FlowConfig", "FlowModel",
    "InvertibleConv1x1", "LearnedPrior", "MaskedAutoregressive", "Split", "SplineCoupling", "Squeeze",
    "bijectors", "data", "glow",
    "initialize_actnorm", "maf", "models", "networks", "nice", "nsf", "realnvp", "training",
]


def __getattr__(name):
    """A submodule, or a name it re-exports, imported on first use (PEP 562)."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _REEXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_REEXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))

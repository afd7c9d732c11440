"""tfp_glow: NICE, RealNVP and Glow as TensorFlow Probability bijectors, trainable with Keras 3.

Importing the package is cheap: its submodules and the names it re-exports load on first use
(`tg.FlowModel`, `tg.data`, `from tfp_glow import glow`), for start-up time: `tfp-glow --help`
(tfp_glow.cli) builds its parser without TensorFlow. Keras knows the saved `FlowModel` class
once `tfp_glow.training` is imported: touch `tg.FlowModel` (or `import tfp_glow.training`)
before `keras.models.load_model` of a `.keras` file.

The package's folders are its layers (docs/design.md, Layering): `data`, `numerics` and `plots`
at the bottom, then `bijectors`, `models`, `serving`, `training`, `analysis` and `runs`, with
`recipes`, `bench` and `cli` on top. Modules that used to sit at the top level keep their old
import paths (`tfp_glow.callbacks`, `tfp_glow.export`, ...: `MOVED_MODULES`), which resolve to
the same module objects in their folders.
"""
import importlib
import importlib.abc
import importlib.util
import os
import sys

# Quiet TensorFlow's C++ start-up chatter unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns its oneDNN CPU kernels on by default only on some Intel CPUs; elsewhere
# they make a Glow train step much faster (docs/design.md, Speed; docs/measurements/speed.md).
# It takes effect only if TensorFlow is not imported yet; a user's own setting wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

_SUBMODULES = ("analysis", "bijectors", "data", "extras", "models", "numerics", "plots", "recipes", "runs", "serving",
               "training")
# old top-level module -> where it lives now; `import tfp_glow.<old>` gives the new module itself
MOVED_MODULES = {
    "averaging": "numerics.averaging", "callbacks": "training.callbacks", "conditional": "training.conditional",
    "dequantization": "models.dequantization", "distribute": "training.distribute", "export": "serving",
    "keras_inputs": "training.keras_inputs", "labeled": "data.labeled", "labels": "data.labels",
    "latent": "analysis.latent", "networks": "bijectors.networks", "persistence": "training.persistence",
    "precision": "numerics.precision", "sampling": "models.sampling", "scoring": "analysis.scoring",
    "splits": "data.splits", "stability": "numerics.stability", "summary": "training.summary",
}
_REEXPORTS = {  # name -> the submodule it comes from
    **dict.fromkeys(("ActNorm", "AdditiveCoupling", "AffineCoupling", "DiagonalScale", "InvertibleConv1x1",
                     "LearnedPrior", "MaskedAutoregressive", "Split", "SplineCoupling", "Squeeze",
                     "TransformerAutoregressive", "initialize_actnorm"), "bijectors"),
    **dict.fromkeys(("FlowConfig", "glow", "maf", "nice", "nsf", "realnvp", "tarflow"), "models"),
    "FlowModel": "training",
    "ConditionalFlowModel": "training.conditional",
}

__all__ = [
    "ActNorm", "AdditiveCoupling", "AffineCoupling", "ConditionalFlowModel", "DiagonalScale", "FlowConfig", "FlowModel",
    "InvertibleConv1x1", "LearnedPrior", "MaskedAutoregressive", "Split", "SplineCoupling", "Squeeze",
    "TransformerAutoregressive", "analysis", "bijectors", "data", "extras", "glow", "initialize_actnorm", "maf",
    "models", "nice", "nsf", "numerics", "plots", "realnvp", "recipes", "runs", "serving", "tarflow", "training",
]


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves `tfp_glow.<old name>` to the module now in a folder: the same object, not a copy."""

    def __init__(self):
        self._specs = {}

    def find_spec(self, fullname, path=None, target=None):
        old = fullname.rpartition(".")[2]
        if fullname == f"{__name__}.{old}" and old in MOVED_MODULES:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        module = importlib.import_module(f"{__name__}.{MOVED_MODULES[spec.name.rpartition('.')[2]]}")
        self._specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module):
        # the import machinery stamped the alias's spec on the real module: give it its own back
        module.__spec__ = self._specs.pop(module.__name__)


sys.meta_path.append(_MovedModuleFinder())


def __getattr__(name):
    """A submodule, or a name it re-exports, imported on first use (PEP 562)."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in MOVED_MODULES:
        return importlib.import_module(f"{__name__}.{MOVED_MODULES[name]}")
    if name in _REEXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_REEXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))

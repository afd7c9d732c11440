"""Training: `FlowModel`, the Keras model that trains any flow, one module per idea.

`model` (the class), `preprocessing` (data checks, dequantization), `context` (the
conditioning input), `steps` (train/test/predict, metrics), `weighting` (the figures and their
weighted means), `sampling` (sample, encode, decode), `compiling` and `options` (compile, XLA,
the learning rate), `inputs` (Keras' batches).
"""
from tfp_glow.training.model import FlowModel
from tfp_glow.training.options import op_determinism_enabled, resolve_jit_compile

__all__ = ["FlowModel", "op_determinism_enabled", "resolve_jit_compile"]

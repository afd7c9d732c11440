"""tfp_glow: NICE, RealNVP and Glow as TensorFlow Probability bijectors, trainable with Keras 3."""
from tfp_glow import bijectors, networks
from tfp_glow.bijectors import (ActNorm, AdditiveCoupling, AffineCoupling, DiagonalScale,
                                InvertibleConv1x1, LearnedPrior, Split, Squeeze, initialize_actnorm)

__version__ = "0.1.0"

__all__ = [
    "ActNorm", "AdditiveCoupling", "AffineCoupling", "DiagonalScale", "InvertibleConv1x1",
    "LearnedPrior", "Split", "Squeeze", "bijectors", "initialize_actnorm", "networks",
]

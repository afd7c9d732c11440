"""Flow building blocks as `tfp.bijectors.Bijector` subclasses.

`forward` maps latent to data (sampling); `inverse` maps data to latent (`log_prob`).
"""
from tfp_glow.bijectors.actnorm import ActNorm
from tfp_glow.bijectors.autoregressive import MADE, MaskedAutoregressive
from tfp_glow.bijectors.chain import Chain
from tfp_glow.bijectors.conv1x1 import InvertibleConv1x1
from tfp_glow.bijectors.coupling import AdditiveCoupling, AffineCoupling
from tfp_glow.bijectors.initialization import actnorms, initialize_actnorm
from tfp_glow.bijectors.masks import MASK_TYPES, Mask
from tfp_glow.bijectors.scaling import DiagonalScale
from tfp_glow.bijectors.learned_prior import LearnedPrior
from tfp_glow.bijectors.split import Split
from tfp_glow.bijectors.spline import SplineCoupling
from tfp_glow.bijectors.squeeze import Squeeze
from tfp_glow.bijectors.tracking import keras_layers
from tfp_glow.bijectors.transformer_autoregressive import TransformerAutoregressive
from tfp_glow.bijectors.walk import forward_and_log_det, inverse_and_log_det, log_prob, set_recompute

__all__ = [
    "ActNorm", "AdditiveCoupling", "Chain", "AffineCoupling", "DiagonalScale", "InvertibleConv1x1",
    "LearnedPrior", "MADE", "MASK_TYPES", "Mask", "MaskedAutoregressive", "Split", "SplineCoupling", "Squeeze",
    "TransformerAutoregressive",
    "actnorms", "forward_and_log_det", "initialize_actnorm", "inverse_and_log_det", "keras_layers", "log_prob", "set_recompute",
]

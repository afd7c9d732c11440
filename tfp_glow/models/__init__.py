"""Model builders: NICE, RealNVP, Glow, neural spline flows, MAF and TarFlow as `tfd.TransformedDistribution`s.

Each returns `TransformedDistribution(standard normal over the event, bijector)`, where the
bijector's `inverse` maps data (dequantized to `[-0.5, 0.5)`, or raw vectors) to the latent
and `forward` samples. Multi-scale models keep one latent of the data's shape: every level
squeezes, runs its steps, factors out half under a (learned) prior, recurses on the other
half and unsqueezes, so the whole flow stays one bijector.

What this subpackage holds, one module an idea, every public name re-exported here:

* ``glow_builder``, ``realnvp_builder``, ``nice_builder``, ``nsf_builder``, ``maf_builder``,
  ``tarflow_builder``:
  one flow family each, its bijector (``glow_bijector``, ...) and its distribution (``glow``,
  ...; ``realnvp_builder`` also ``logit_preprocessing``). The modules are named ``*_builder``
  so that ``tfp_glow.models.glow`` and the others stay the builder functions;
* ``config``: ``FlowConfig`` (what rebuilds a flow; its ``to_dict`` is what run directories and
  ``.keras`` files store) and ``FLOWS``;
* ``weights_format``: ``WEIGHTS_FORMAT_VERSION``, ``OldWeightsWarning``, ``old_weights_message``;
* ``distribution``: the standard-normal base around a bijector, ``standard_normal`` and
  ``count_parameters``;
* ``assembly``: the argument checks and chaining helpers the builders share.
"""
from tfp_glow.models.config import FLOWS, FlowConfig
from tfp_glow.models.distribution import count_parameters, standard_normal
from tfp_glow.models.glow_builder import glow, glow_bijector
from tfp_glow.models.maf_builder import maf, maf_bijector
from tfp_glow.models.nice_builder import nice, nice_bijector
from tfp_glow.models.nsf_builder import nsf, nsf_bijector
from tfp_glow.models.realnvp_builder import logit_preprocessing, realnvp, realnvp_bijector
from tfp_glow.models.tarflow_builder import tarflow, tarflow_bijector
from tfp_glow.models.weights_format import WEIGHTS_FORMAT_VERSION, OldWeightsWarning, old_weights_message

__all__ = [
    "FLOWS",
    "FlowConfig",
    "OldWeightsWarning",
    "WEIGHTS_FORMAT_VERSION",
    "count_parameters",
    "glow",
    "glow_bijector",
    "logit_preprocessing",
    "maf",
    "maf_bijector",
    "nice",
    "nice_bijector",
    "nsf",
    "nsf_bijector",
    "old_weights_message",
    "realnvp",
    "realnvp_bijector",
    "standard_normal",
    "tarflow",
    "tarflow_bijector",
]

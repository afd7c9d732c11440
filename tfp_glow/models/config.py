"""`FlowConfig`, what rebuilds a flow (kind, event shape, builder arguments), and `FLOWS`, the kinds.

`FlowConfig.to_dict()` is what run directories and `.keras` files store; `from_dict` reads it
back and `build` calls the builder the kind names.
"""
import dataclasses

import tensorflow as tf

from tfp_glow.models.glow_builder import glow
from tfp_glow.models.maf_builder import maf
from tfp_glow.models.nice_builder import nice
from tfp_glow.models.nsf_builder import nsf
from tfp_glow.models.realnvp_builder import realnvp
from tfp_glow.models.tarflow_builder import tarflow

FLOWS = ("glow", "realnvp", "nice", "nsf", "maf", "tarflow")

_BUILDERS = {"nice": nice, "realnvp": realnvp, "glow": glow, "nsf": nsf, "maf": maf, "tarflow": tarflow}


@dataclasses.dataclass
class FlowConfig:
    """Everything needed to rebuild a flow: its kind, event shape and builder arguments."""

    flow: str = "glow"
    event_shape: tuple = (8, 8, 1)
    kwargs: dict = dataclasses.field(default_factory=dict)

    def build(self, dtype=tf.float32):
        if self.flow not in _BUILDERS:
            raise ValueError(f"Unknown flow {self.flow!r}; expected one of {tuple(_BUILDERS)}.")
        return _BUILDERS[self.flow](tuple(self.event_shape), dtype=dtype, **self.kwargs)

    def to_dict(self):
        return {"flow": self.flow, "event_shape": list(self.event_shape), "kwargs": dict(self.kwargs)}

    @classmethod
    def from_dict(cls, d):
        return cls(d["flow"], tuple(d["event_shape"]), dict(d.get("kwargs", {})))

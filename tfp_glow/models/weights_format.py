"""The weights format: `WEIGHTS_FORMAT_VERSION`, `OldWeightsWarning` and `old_weights_message`.

What stored weights mean changes with the format version; loaders (persistence, runs) record
the version with the weights and warn, through `old_weights_message`, when weights of an older
version define a different model today.
"""

#: Version of what stored weights mean. 2: Glow's sigmoid coupling contracts on the density
#: pass (`z_b = (x_b - t) * sigma`, openai/glow's direction); version 1 divided by `sigma`
#: there, so a version-1 Glow's weights define a different (and worse-behaved) model today.
WEIGHTS_FORMAT_VERSION = 2


class OldWeightsWarning(UserWarning):
    """Weights saved by an older tfp_glow whose layers meant something else."""


def old_weights_message(flow_config_dict, format_version, source):
    """A warning text if weights of `format_version` mean something else in this version.

    Args:
      flow_config_dict: `FlowConfig.to_dict()` of the model the weights belong to.
      format_version: the version recorded with the weights (`None` or 1 for old files).
      source: what is being loaded, for the message.
    """
    if (format_version or 1) >= WEIGHTS_FORMAT_VERSION:
        return None
    kwargs = flow_config_dict.get("kwargs", {})
    if flow_config_dict.get("flow") != "glow" or kwargs.get("coupling", "affine") != "affine":
        return None  # only Glow's affine (sigmoid) coupling changed
    return (f"{source} was saved by tfp_glow before weights format 2, when Glow's affine coupling "
            f"divided by its scale on the density pass; it now multiplies, as openai/glow does. "
            f"These weights load, but they define a different model: its likelihoods and samples "
            f"are not the ones that were trained. Retrain the model.")

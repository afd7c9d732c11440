"""Export a trained `FlowModel` as a SavedModel with serving signatures: `tfp_glow.serving`.

This module keeps the names it always had; the signatures, the SavedModel's layout and its
format are documented in `tfp_glow.serving`.
"""
from tfp_glow.serving import (CONDITIONAL_SIGNATURES, conditional_serving_functions, export_conditional_saved_model,
                              export_saved_model, sample_stateless, serving_functions, signature_names,
                              versioned_path)

__all__ = ["export_saved_model", "serving_functions", "sample_stateless", "signature_names", "versioned_path",
           "CONDITIONAL_SIGNATURES", "conditional_serving_functions", "export_conditional_saved_model"]

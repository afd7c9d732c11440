"""tfp_glow.export: the module's public names keep working, as tfp_glow.serving's."""
from tfp_glow import export, serving


def test_export_re_exports_serving():
    for name in export.__all__:
        assert getattr(export, name) is getattr(serving, name), name
    assert {"export_saved_model", "export_conditional_saved_model", "sample_stateless", "signature_names",
            "serving_functions", "versioned_path", "CONDITIONAL_SIGNATURES",
            "conditional_serving_functions"} <= set(export.__all__)

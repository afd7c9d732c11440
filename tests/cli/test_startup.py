"""`tfp-glow --help` starts without TensorFlow: importing tfp_glow and its CLI package is cheap,
and the names tfp_glow re-exports still resolve (on first use)."""
import subprocess
import sys

import pytest

HELP_WITHOUT_TF = """
import sys
import tfp_glow.cli
try:
    tfp_glow.cli.main(sys.argv[1:])
except SystemExit as e:
    assert e.code == 0, e.code
heavy = sorted(m for m in ("tensorflow", "keras", "tensorflow_probability") if m in sys.modules)
assert not heavy, heavy
"""


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["evaluate", "--help"], []])
def test_help_imports_no_tensorflow(argv):
    done = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TF, *argv], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: tfp-glow" in done.stdout


def test_reexported_names_resolve_on_first_use():
    import tfp_glow as tg
    from tfp_glow import FlowConfig, glow  # noqa: F401  (from-imports go through __getattr__ too)
    from tfp_glow.models import FlowConfig as models_config
    from tfp_glow.training import FlowModel

    assert tg.FlowModel is FlowModel and FlowConfig is models_config and tg.glow is tg.models.glow
    assert tg.bijectors.Chain is not None and tg.data.make_dataset is not None
    assert set(tg.__all__) <= set(dir(tg))
    with pytest.raises(AttributeError, match="no_such_name"):
        tg.no_such_name


def test_the_parser_repeats_the_library_choices_exactly():
    # the parser imports no TensorFlow, so it spells out these lists; they must not drift
    from tfp_glow import models
    from tfp_glow.training import distribute
    from tfp_glow.numerics import precision
    from tfp_glow.cli import options
    assert options.FLOW_CHOICES == models.FLOWS
    assert options.STRATEGIES == distribute.STRATEGIES
    assert options.POLICIES == precision.CHOICES

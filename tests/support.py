"""What many tests share: the repository's paths and the tiny models they train.

`conftest.py` turns these into fixtures (`tiny_glow`, `tiny_conditional_glow`, `digits`,
`labeled_digits`); test modules import the paths and configs directly (`from support import ...`).
"""
import pathlib

import tfp_glow as tg

TESTS = pathlib.Path(__file__).resolve().parent
REPO = TESTS.parent
FIXTURES = TESTS / "fixtures"

NUM_CLASSES = 10  # the digits' classes
# A two-level Glow on the 8x8 digits: the smallest model with a split, a learned prior and actnorm.
TINY_GLOW = tg.FlowConfig("glow", (8, 8, 1), dict(levels=2, steps=1, hidden_channels=8))
TINY_CONDITIONAL_GLOW = tg.FlowConfig("glow", (8, 8, 1), dict(levels=2, steps=1, hidden_channels=8,
                                                              num_classes=NUM_CLASSES))
# The same on the command line.
TINY_GLOW_ARGS = ["--levels", "2", "--steps", "1", "--hidden", "8"]
# One level (no split): the quickest Glow to build and compile.
ONE_LEVEL_GLOW = tg.FlowConfig("glow", (8, 8, 1), dict(levels=1, steps=1, hidden_channels=8))

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# `tfp-glow train --mixed-precision` defaults to auto, which is mixed_bfloat16 on a machine with
# native bf16 (the CI's CPU has avx512_bf16). The CLI tests compare figures at float32 rounding
# and were written for float32 training, so the whole session trains in float32 unless a test
# asks for a policy; the tests of auto itself (tests/cli/test_train_precision.py) unset this and
# monkeypatch `precision.has_native_bf16`.
os.environ.setdefault("TFP_GLOW_MIXED_PRECISION", "none")


@pytest.fixture
def tiny_glow():
    """A fresh, untrained `FlowModel` of `support.TINY_GLOW` on 5-bit digits."""
    import tfp_glow as tg
    from support import TINY_GLOW
    return tg.FlowModel(TINY_GLOW, n_bits=5)


@pytest.fixture
def tiny_conditional_glow():
    """A fresh, untrained `ConditionalFlowModel` of `support.TINY_CONDITIONAL_GLOW` (10 classes)."""
    import tfp_glow as tg
    from support import TINY_CONDITIONAL_GLOW
    return tg.ConditionalFlowModel(TINY_CONDITIONAL_GLOW, n_bits=5)


@pytest.fixture(scope="session")
def digits():
    """The 8x8 digits that ship with the package: `{split: uint8 [N, 8, 8, 1]}`."""
    from tfp_glow import data
    return {split: data.load_digits(split) for split in ("train", "validation", "test")}


@pytest.fixture(scope="session")
def labeled_digits():
    """The digits with their labels: `{split: (x uint8 [N, 8, 8, 1], y int [N])}`."""
    from tfp_glow.data import labeled
    return {split: labeled.load_labeled_split("digits", split)[:2] for split in ("train", "validation", "test")}

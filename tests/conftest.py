import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# `tfp-glow train --mixed-precision` defaults to auto, which is mixed_bfloat16 on a machine with
# native bf16 (the CI's CPU has avx512_bf16). The CLI tests compare figures at float32 rounding
# and were written for float32 training, so the whole session trains in float32 unless a test
# asks for a policy; the tests of auto itself (tests/test_cli_precision.py) unset this and
# monkeypatch `precision.has_native_bf16`.
os.environ.setdefault("TFP_GLOW_MIXED_PRECISION", "none")

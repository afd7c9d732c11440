"""Benchmarks: `tfp-glow bench` (speed against `tfb.Glow`) and `tfp-glow bench --quality`."""
from tfp_glow.bench.speed import build_parser, main

__all__ = ["build_parser", "main"]

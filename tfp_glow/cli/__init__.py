"""The `tfp-glow` command line (being split into one module per command)."""
from tfp_glow.cli.train import CLIError, build_parser, load_split, main

__all__ = ["main", "build_parser", "CLIError"]

"""`tfp-glow bench` and `python -m tfp_glow.bench`: the options (`build_parser`) and `main`.

Without `--quality`: our Glow against TFP's `tfb.Glow` (`speed`, printed by `report`; `--rss`
in `rss`, `--profile` in `profile`), or with `--scaling-table` our model alone over depth x
image size (`scaling`). With `--quality`, the rest of the command line goes to
`quality.main`: our Glow against PyTorch normflows' Glow, trained for the same wall-clock
budget, compared on test bits/dim, img/s, non-finite steps and sample finiteness
(`tfp-glow bench --quality --help`).

The private options `--_cell` and `--_rss-child` make this process one cell of the scaling
table or one model's RSS measurement: the bench's child processes enter here, as a user does.

This module and the parsers (`options`, `quality_options`) are standard library only: `--help`
answers without TensorFlow, which loads (lazily, below) once the options ask for a measurement.
"""
import sys

from tfp_glow.bench import quality_options
from tfp_glow.bench.config import BenchError
from tfp_glow.bench.options import build_parser

__all__ = ["build_parser", "main"]


def main(argv=None):
    """Entry point of `tfp-glow bench` / `python -m tfp_glow.bench`; returns an exit code.

    With `--quality`, the rest of the command line goes to `tfp_glow.bench.quality.main`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--tarflow-reference" or a.startswith("--tarflow-reference=") for a in argv):
        try:
            from tfp_glow.bench import tarflow_speed  # imports torch: only when asked
        except ImportError as e:
            print(f"tfp-glow bench: error: --tarflow-reference needs PyTorch ({e}); "
                  f"pip install \"tfp_glow[bench]\".", file=sys.stderr)
            return 2
        return tarflow_speed.main(argv)
    if "--quality" in argv:
        rest = [a for a in argv if a != "--quality"]
        if "-h" in rest or "--help" in rest:
            quality_options.build_parser().parse_args(rest)  # prints the help and exits
        from tfp_glow.bench import quality  # TensorFlow loads here, once a run is asked for

        return quality.main(rest)
    parser = build_parser()
    args = parser.parse_args(argv)
    from tfp_glow.bench import run as run_lib  # TensorFlow loads here, once a run is asked for

    try:
        return run_lib.run(args)
    except BenchError as e:
        print(f"tfp-glow bench: error: {e}", file=sys.stderr)
        return 2

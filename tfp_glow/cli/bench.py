"""`tfp-glow bench ...`: delegates every argument to `tfp_glow.bench.main`, which parses them."""
import tfp_glow.bench as bench_lib

__all__ = ["run"]


def run(argv):
    """`tfp_glow.bench.main(argv)`; returns its exit code."""
    return bench_lib.main(list(argv))

"""`python -m tfp_glow.bench`: the same as `tfp-glow bench`."""
import sys

from tfp_glow.bench.cli import main

sys.exit(main())

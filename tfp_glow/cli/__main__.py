"""`python -m tfp_glow.cli`: the `tfp-glow` command."""
import sys

from tfp_glow.cli import main

sys.exit(main())

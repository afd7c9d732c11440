"""The `tfp-glow` parser's argument types (each parses one option's text and says what it
expected) and its help formatter. Standard library only, like the whole parser.
"""
import argparse
import math

__all__ = ["HelpFormatter", "positive_int", "positive_float", "non_negative_int", "non_negative_float", "fraction",
           "n_bits", "spline_bins", "ema_decay", "hidden_sizes", "int_list", "float_list", "signed_float_list"]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Raw descriptions/epilogs; `(default: X)` appended unless the help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS or not action.option_strings):
            return text
        return f"{text} (default: {action.default})"


def _number(convert, ok, expected, out_of_range=None):
    """An argparse type: `convert(text)`, which must satisfy `ok`; the errors say what was expected."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {out_of_range or expected}; got {text!r}")
        return value

    return parse


positive_int = _number(int, lambda v: v >= 1, "a positive integer")
positive_float = _number(float, lambda v: v > 0 and math.isfinite(v), "a positive number")
non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
non_negative_float = _number(float, lambda v: 0 <= v < float("inf"), "a number >= 0", "a finite number >= 0")
fraction = _number(float, lambda v: 0 < v < 1, "a fraction in (0, 1)")
n_bits = _number(int, lambda v: 1 <= v <= 8, "an integer in [1, 8]")
spline_bins = _number(int, lambda v: v >= 2, "an integer >= 2")


def ema_decay(text):
    """`--ema`: a decay in (0, 1), or `0` / `none` / `off` for no weight average (0.0)."""
    if text.strip().lower() in ("none", "off"):
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a decay in (0, 1), e.g. 0.999, or 0 / none; got {text!r}") from None
    if value == 0:
        return 0.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a decay in (0, 1), e.g. 0.999, or 0 / none; got {text!r}")
    return value


def hidden_sizes(text):
    """`N` or `N,N,...`: positive layer widths, as a tuple."""
    try:
        units = tuple(int(u) for u in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or a comma-separated list of ints; got {text!r}")
    if not units or min(units) < 1:
        raise argparse.ArgumentTypeError(f"hidden sizes must be positive; got {text!r}")
    return units


def int_list(text):
    """`N,N,...`: integers, as a tuple."""
    try:
        return tuple(int(u) for u in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers; got {text!r}") from None


def float_list(text):
    """`X,X,...`: finite numbers >= 0, as a tuple."""
    try:
        values = tuple(float(u) for u in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of numbers; got {text!r}") from None
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers >= 0; got {text!r}")
    return values


def signed_float_list(text):
    """`X,X,...`: finite numbers, as a tuple."""
    try:
        values = tuple(float(u) for u in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of numbers; got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers; got {text!r}")
    return values

"""Bounded log-scales: the one squashing every tanh-bounded scale in the package uses."""
import tensorflow as tf


def bounded_log_scale(raw, bound):
    """`log s = bound * tanh(raw / bound)`: the identity near 0, never beyond `+-bound`.

    So `s = exp(log s)` lies in `(e^-bound, e^bound)` and is 1 at `raw = 0` (a zero-initialised
    network starts as the identity), and no finite `raw` overflows it (docs/design.md,
    Bounded scales).

    Args:
      raw: a float tensor of any shape, the network's raw output.
      bound: a positive Python float or a tensor broadcastable to `raw`.

    References:
      Dinh, Sohl-Dickstein, Bengio. Density estimation using Real NVP. 2016 (`tanh` scales).
    """
    return bound * tf.math.tanh(raw / bound)

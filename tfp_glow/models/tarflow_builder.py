"""TarFlow: `tarflow_bijector`, a stack of transformer autoregressive blocks over `[H, W, C]`,
and `tarflow`, its distribution.

Named `tarflow_builder` so that `tfp_glow.models.tarflow` stays the builder function.
"""
import tensorflow as tf

from tfp_glow.bijectors import TransformerAutoregressive
from tfp_glow.models.assembly import _chain, _check_num_classes
from tfp_glow.models.distribution import _distribution

HEAD_WIDTH = 64  # the reference's width per attention head


def _check_tarflow_arguments(event_shape, blocks):
    """What the blocks themselves cannot check (each block checks its patch size, width and heads)."""
    if len(event_shape) != 3:
        raise ValueError(f"tarflow expects event shape [H, W, C]; received {list(event_shape)}.")
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
        raise ValueError(f"blocks must be a positive int; received {blocks!r}.")


def tarflow_bijector(event_shape, patch_size=4, width=128, blocks=4, layers_per_block=4, heads=None, expansion=4,
                     num_classes=0, scale_bound=2.0, dtype=tf.float32):
    """TarFlow's bijector: `blocks` transformer autoregressive steps over the image's patch tokens.

    Data -> latent: block `k` is a `TransformerAutoregressive`,
    `z_t = (x_t - b_k(x_<t)) exp(-a_k(x_<t))` over the `T = (H/p)(W/p)` patch tokens of
    `p*p*C` values, the token order flipped from one block to the next (identity, flip, ...),
    so that every token is conditioned on every other one somewhere in the stack; `log|det| =
    -sum_k sum_t a_k`. The latent keeps the image's shape.

    Args:
      event_shape: `[H, W, C]`, Python ints; `patch_size` divides `H` and `W`.
      patch_size: p, the side of a patch token.
      width: the transformers' width; divisible by `heads`.
      blocks: number of autoregressive blocks.
      layers_per_block: transformer layers (attention + MLP) in each block.
      heads: attention heads; `None`: `max(1, width // 64)`, the reference's 64 per head.
      expansion: MLP hidden size over `width`.
      num_classes: K > 0 makes every block class-conditional on a one-hot context `[*batch, K]`
        (TFP kwarg `conditional_input`), embedded and added to each token. 0: unconditional.
      scale_bound: bound s of `|a|` (`TransformerAutoregressive`), or None for unbounded.
      dtype: float dtype.

    References:
      Zhai et al., "Normalizing Flows are Capable Generative Models", 2024, arXiv:2412.06329
      (TarFlow; apple/ml-tarflow's `Model`).
    """
    event_shape = tuple(int(d) for d in event_shape)
    _check_tarflow_arguments(event_shape, blocks)
    _check_num_classes(num_classes)
    heads = max(1, int(width) // HEAD_WIDTH) if heads is None else heads
    parts = [TransformerAutoregressive(event_shape, patch_size=patch_size, width=width, layers=layers_per_block,
                                       heads=heads, expansion=expansion, order="identity" if k % 2 == 0 else "flip",
                                       context_dim=int(num_classes), scale_bound=scale_bound, dtype=dtype,
                                       name=f"block{k}")
             for k in range(blocks)]
    return _chain(parts, name="tarflow")


def tarflow(event_shape, dtype=tf.float32, name="tarflow", validate_args=False, **kwargs):
    """TarFlow as a distribution over `[H, W, C]`; see `tarflow_bijector`, and `glow` for `name`
    and `validate_args`."""
    return _distribution(tarflow_bijector(tuple(event_shape), dtype=dtype, **kwargs), event_shape, dtype, name,
                         validate_args)

"""Defaults per data kind and flow: what `tfp-glow train` uses and the API can reach.

`recipe_for(kind, shape, flow, data_name)` returns a `Recipe`: the builder arguments of the
flow and the training options (epochs, batch, learning rate, warmup, clipping, bit depth).
The CLI fills every option the user did not give from it; `bench --quality` trains "the CLI
defaults" from it too.

Why these numbers (2 CPU cores; README, Training):
* Glow on images larger than 8x8: L = 3 (or the most levels dividing H and W), K = 8,
  256 hidden, Adam 1e-3, batch 64, 8 bits, a 200-step linear warmup and clipping at global
  norm 50. With the coupling direction fixed, these train digits28 and photos32 without a
  single skipped step; the warmup and the clip cost nothing measurable and cover the first
  steps of an unlucky initialisation (openai/glow; y0ast/Glow-PyTorch#1).
* 8x8 digits: 5 bits, 128 hidden, lr 2e-3, 30 epochs of 20 steps, a 50-step warmup.
"""
import dataclasses
from typing import Optional

from tfp_glow import stability

__all__ = ["Recipe", "recipe_for", "glow_levels"]


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything a default training run needs besides the data.

    Attributes:
      flow: `glow`, `realnvp` or `nice`.
      flow_kwargs: builder arguments (`models.glow(...)` etc.).
      n_bits: bit depth of image data, `None` for vectors.
      epochs, batch_size, steps_per_epoch: the `fit` schedule (`steps_per_epoch=None`: one
        pass over the data).
      learning_rate, warmup_steps, clip_norm: `FlowModel.compile` options.
    """

    flow: str
    flow_kwargs: dict
    n_bits: Optional[int]
    epochs: int
    batch_size: int
    steps_per_epoch: Optional[int]
    learning_rate: float
    warmup_steps: int
    clip_norm: Optional[float]


def glow_levels(shape):
    """The most levels in (3, 2, 1) whose squeezes divide H and W (`shape = [H, W, C]`)."""
    h, w = shape[0], shape[1]
    return next((lv for lv in (3, 2) if h and w and h % 2 ** lv == 0 and w % 2 ** lv == 0), 1)


def recipe_for(kind, shape, flow=None, data_name=None):
    """The default `Recipe` for data of `kind` (`image` or `vector`) and `shape`.

    Args:
      kind: `"image"` (`shape = [H, W, C]`) or `"vector"` (`shape = [D]`).
      shape: the shape of one example, Python ints.
      flow: `glow`, `realnvp`, `nice`, or `None` for the kind's default (glow for images,
        realnvp for vectors).
      data_name: the data source's name; `digits` (8x8) has its own schedule.

    Raises:
      ValueError: an unknown kind or flow, or glow on vectors.
    """
    if kind not in ("image", "vector"):
        raise ValueError(f"kind must be 'image' or 'vector'; received {kind!r}.")
    image = kind == "image"
    flow = flow or ("glow" if image else "realnvp")
    if flow not in ("glow", "realnvp", "nice"):
        raise ValueError(f"unknown flow {flow!r}; expected glow, realnvp or nice.")
    if flow == "glow" and not image:
        raise ValueError(f"glow works on images [H, W, C]; this is vector data of shape {list(shape)}.")
    shape = tuple(shape)
    small = image and max(shape[0] or 0, shape[1] or 0) <= 8
    lr, warmup, clip = stability.DEFAULT_LEARNING_RATE, stability.DEFAULT_WARMUP_STEPS, stability.DEFAULT_CLIP_NORM
    if flow == "glow":
        kwargs = {"levels": 2 if small else glow_levels(shape), "steps": 8,
                  "hidden_channels": 128 if small else 256, "coupling": "affine", "lu": True}
    elif flow == "realnvp":
        kwargs = ({"levels": 2, "couplings_per_stage": 3, "hidden": 64} if image
                  else {"couplings_per_stage": 8, "hidden": [128, 128]})
    else:
        kwargs = {"couplings": 4, "hidden": [256, 256, 256]}
    if not image:
        return Recipe(flow, kwargs, None, epochs=20, batch_size=256, steps_per_epoch=100, learning_rate=lr,
                      warmup_steps=100, clip_norm=clip)
    if data_name == "digits":
        if flow == "nice":
            # NICE's scaling layer starts at scale 1 while the digits' constant border pixels need
            # log-scales near -4.7: a higher learning rate and more (fast) epochs get it there.
            return Recipe(flow, kwargs, 5, epochs=100, batch_size=64, steps_per_epoch=None, learning_rate=1e-2,
                          warmup_steps=50, clip_norm=clip)
        return Recipe(flow, kwargs, 5, epochs=30, batch_size=64, steps_per_epoch=None, learning_rate=2e-3,
                      warmup_steps=50, clip_norm=clip)
    return Recipe(flow, kwargs, 8, epochs=10, batch_size=64, steps_per_epoch=None, learning_rate=lr,
                  warmup_steps=warmup, clip_norm=clip)

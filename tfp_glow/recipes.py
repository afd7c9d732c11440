"""Defaults per data kind and flow, and a model built from them: what `tfp-glow train` does,
reachable from the API.

    from tfp_glow import data, recipes
    from tfp_glow.data import splits

    model, recipe = recipes.build_model("digits")              # compiled FlowModel + its Recipe
    model, recipe = recipes.build_model("moons", "nice", steps=6, learning_rate=3e-4)
    train_x, _ = splits.load_split("digits", "train")
    model.fit(data.make_dataset(train_x, recipe.batch_size, repeat=recipe.steps_per_epoch is not None),
              epochs=recipe.epochs, steps_per_epoch=recipe.steps_per_epoch)

* `recipe_for(kind, shape, flow, data_name, **overrides)` returns a `Recipe`: the builder
  arguments of the flow and the training options (epochs, batch, learning rate, warmup,
  learning-rate schedule, clipping, weight average, bit depth). Explicit overrides win over
  the defaults: any `Recipe` field, and the model options of `MODEL_OPTIONS` (`levels`,
  `steps`, `hidden`, `coupling`, `lu`, `split_prior`, `logit_alpha`, `learn_prior`, `bins`,
  `transform`),
  which it maps onto the flow's builder arguments.
  An option the flow or the data kind cannot take raises `OptionError` (a `ValueError`).
* `build_model(data_name, flow=None, **overrides)` builds and compiles a `FlowModel` from the
  recipe (the data's kind and shape come from `splits.load_split`); the CLI calls it.
* `default_flow(kind)` and `default_run_dir(flow, data_name, dequantization, conditional)` are the CLI's other defaults.
* `total_steps(recipe, num_examples)`: the optimizer steps of a whole run (for
  `lr_schedule="cosine"`).

`tfp-glow train` fills every option the user did not give from here; `bench --quality` trains
"the CLI defaults" from `recipe_for` too. Imports: training, models, numerics, data (the
import graph is cli -> bench -> recipes -> runs, analysis -> training -> ...; docs/design.md, Layering).

Why these numbers (2 CPU cores; README, Training):
* Glow on images larger than 8x8: L = 3 (or the most levels dividing H and W), K = 8,
  256 hidden, Adam 1e-3, batch 64, 8 bits, a 200-step linear warmup and clipping at global
  norm 50. With the coupling direction fixed, these train digits28 and photos32 without a
  single skipped step; the warmup and the clip cost nothing measurable and cover the first
  steps of an unlucky initialisation (openai/glow; y0ast/Glow-PyTorch#1).
* 8x8 digits: 5 bits, 128 hidden, lr 2e-3, 30 epochs of 20 steps, a 50-step warmup.
* Glow on images larger than 8x8 evaluates, samples and exports with a weight average,
  `ema_decay=0.999`: on photos32 at equal steps it gained 0.07 bits/dim at step 1,500 and lags
  only while the loss falls fast (`docs/measurements/issue18.md`, EMA).
* Glow on colour images larger than 8x8 (3 channels) uses per-channel split priors
  (`split_prior="channel"`, normflows' `GlowBase`); other images keep priors conditional on the
  kept half. On photos32 (L=3 K=4 256 hidden, bf16, EMA) the per-channel priors reached
  2.930 / 2.918 test bits/dim at step 1,500 (seeds 0 / 1) against 3.023 conditional (seed 0)
  and normflows' 3.017 / 2.984; on digits28 (L=2 K=4 400 hidden, seed 0) they lost,
  2.449 against 2.342 (`docs/measurements/issue18.md`, multi-seed table). `--split-prior`
  chooses.
"""
import dataclasses
import os
from typing import Optional

import keras
import tensorflow as tf

from tfp_glow import models
from tfp_glow.data import splits
from tfp_glow.numerics import stability
from tfp_glow.training.conditional import make_flow_model
from tfp_glow.models import FlowConfig

__all__ = ["Recipe", "OptionError", "MODEL_OPTIONS", "recipe_for", "build_model", "glow_levels", "default_flow",
           "default_run_dir", "total_steps", "conditional_label_dropout"]

FLOWS = models.FLOWS  # the flow families, as the model builders name them
#: The weight average that Glow on images larger than 8x8 evaluates and samples with.
GLOW_EMA_DECAY = 0.999
#: The share of labels a class-conditional TarFlow drops in training, for guided sampling (the
#: reference's classifier-free guidance setting, `train.py --drop_label 0.1`).
LABEL_DROPOUT = 0.1
MODEL_OPTIONS = ("levels", "steps", "hidden", "coupling", "lu", "split_prior", "logit_alpha", "learn_prior", "bins",
                 "transform", "patch_size", "blocks", "layers_per_block")
#: `split_prior` as the CLI names it -> `models.glow(split_prior=...)`.
SPLIT_PRIORS = {"conditional": True, "channel": "channel", "none": False}


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
      dequantization: `FlowModel`'s `"uniform"` or `"variational"` (images only).
      ema_decay: `FlowModel.compile`'s weight-average decay, a float in (0, 1); `None` or 0:
        off (the default, until measurements choose one).
      lr_schedule: `FlowModel.compile`'s `"constant"` or `"cosine"` (decay to 0 over the run
        after the warmup).
      noise_sigma: `FlowModel`'s Gaussian noise on the training batches (generation mode,
        images only; 0: none).
      label_dropout: `ConditionalFlowModel`'s share of training labels replaced by the mean
        class (classifier-free guidance); `None`: the conditional default (`LABEL_DROPOUT` for
        TarFlow, whose samples take guidance; 0 for the others).
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
    dequantization: str = "uniform"
    ema_decay: Optional[float] = None
    lr_schedule: str = "constant"
    noise_sigma: float = 0.0
    label_dropout: Optional[float] = None

    def merged(self, **values):
        """This recipe with every given value in place of its own (`None` = not given; 0 is given).

        Raises:
          TypeError: a name that is not a `Recipe` field.
        """
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise TypeError(f"not Recipe fields: {unknown}; expected some of {sorted(fields)}.")
        return dataclasses.replace(self, **{k: v for k, v in values.items() if v is not None})


class OptionError(ValueError):
    """An explicit option that the flow or the data kind cannot take.

    Attributes:
      option: the option's name: one of `MODEL_OPTIONS`, `n_bits`, or `flow` (glow on vectors).
      flow: the flow.
      kind: `image` or `vector`.
      value: the value given.
    """

    def __init__(self, message, option, flow, kind, value):
        super().__init__(message)
        self.option, self.flow, self.kind, self.value = option, flow, kind, value


def default_flow(kind):
    """glow for images, realnvp for vectors."""
    return "glow" if kind == "image" else "realnvp"


def default_run_dir(flow, data_name, dequantization=None, conditional=False):
    """`runs/<flow>-<data>[-variational][-conditional]`: one folder per recipe, the data's name
    reduced to a file name (`mnist`, `faces` for `path/to/faces.npz`, `NAME` for `tfds:NAME`).

    Args:
      flow: the flow family (`glow`, `realnvp`, ...).
      data_name: the data source as given.
      dequantization: `"variational"` adds `-variational`; `None` and `"uniform"` add nothing.
      conditional: a class-conditional run adds `-conditional`.
    """
    name = os.fspath(data_name).rstrip("/\\")
    if name.startswith("tfds:"):
        name = name[5:]
    base = os.path.basename(name)
    if base.lower().endswith(".npz"):
        base = base[:-4]
    slug = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in base)
    tags = ("-variational" if dequantization == "variational" else "") + ("-conditional" if conditional else "")
    return os.path.join("runs", f"{flow}-{slug or 'data'}{tags}")


def total_steps(recipe, num_examples=None):
    """The optimizer steps of a run: `epochs * steps_per_epoch`, or without `steps_per_epoch`
    `epochs` passes over `num_examples` in batches as `tfp-glow train` makes them (the last
    partial batch dropped, unless it is the only one); `None` when that number is unknown."""
    if recipe.steps_per_epoch is not None:
        return int(recipe.epochs) * int(recipe.steps_per_epoch)
    if num_examples is None:
        return None
    return int(recipe.epochs) * max(1, int(num_examples) // int(recipe.batch_size))


def glow_levels(shape):
    """The most levels in (3, 2, 1) whose squeezes divide H and W (`shape = [H, W, C]`)."""
    h, w = shape[0], shape[1]
    return next((lv for lv in (3, 2) if h and w and h % 2 ** lv == 0 and w % 2 ** lv == 0), 1)


def _default_recipe(image, shape, flow, data_name):
    small = image and max(shape[0] or 0, shape[1] or 0) <= 8
    lr, warmup, clip = stability.DEFAULT_LEARNING_RATE, stability.DEFAULT_WARMUP_STEPS, stability.DEFAULT_CLIP_NORM
    if flow == "glow":
        kwargs = {"levels": 2 if small else glow_levels(shape), "steps": 8,
                  "hidden_channels": 128 if small else 256, "coupling": "affine", "lu": True}
        if image and not small and shape[-1] == 3:  # colour: per-channel split priors (module docstring)
            kwargs["split_prior"] = "channel"
    elif flow == "realnvp":
        kwargs = ({"levels": 2, "couplings_per_stage": 3, "hidden": 64} if image
                  else {"couplings_per_stage": 8, "hidden": [128, 128]})
    elif flow == "nsf":  # vectors, or images flattened
        kwargs = {"couplings": 8 if image else 4, "hidden": [256, 256] if image else [128, 128], "bins": 8}
    elif flow == "maf":
        kwargs = {"layers": 5, "hidden": [256, 256] if image else [128, 128]}
    # tarflow: images only; apple/ml-tarflow's MNIST notebook (patch 4, width 128, 4 x 4). Its training
    # defaults are the images' below (Adam 1e-3, 200-step warmup, clip 50): on digits28 at 1,000 equal
    # steps they gave 3.128 test bits/dim against 3.522 at lr 2e-3, 3.360 unclipped and 3.298 with
    # beta_2 0.95 (docs/measurements/issue21.md, "Training defaults").
    elif flow == "tarflow":
        kwargs = ({"patch_size": 2, "width": 64, "blocks": 4, "layers_per_block": 2} if small else
                  {"patch_size": 4, "width": 128, "blocks": 4, "layers_per_block": 4})
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
                  warmup_steps=warmup, clip_norm=clip, ema_decay=GLOW_EMA_DECAY if flow == "glow" and not small else None)


def _with_model_options(flow, kind, base, levels=None, steps=None, hidden=None, coupling=None, lu=None,
                        split_prior=None, logit_alpha=None, learn_prior=None, bins=None, transform=None,
                        patch_size=None, blocks=None, layers_per_block=None):
    """The builder arguments `base` (a recipe's `flow_kwargs`) with the given model options
    (`recipe_for` has checked that `flow` fits `kind`).

    Args:
      flow, kind: the flow and the kind of data it models.
      base: the builder arguments the options change.
      levels: glow: levels L; realnvp images: scales.
      steps: glow: steps K per level; realnvp: couplings per stage (images) or in all
        (vectors); nice, nsf: coupling layers; maf: autoregressive layers.
      hidden: conditioner width: one channel count (glow, realnvp images), or MLP units as an
        int (every layer) or a sequence (nice, nsf, maf, realnvp vectors).
      coupling, lu: glow only. logit_alpha, learn_prior: realnvp images only.
      split_prior: glow only: the priors at the splits, `"conditional"` (on the kept half),
        `"channel"` (a learned Gaussian per channel) or `"none"` (standard normal); also
        `models.glow`'s own values (`True`, `"channel"`, `False`).
      bins: spline bins (nsf; maf with the spline transform). transform: maf only, `affine`
        or `spline`.
      patch_size, blocks, layers_per_block: tarflow only (its `hidden` is the transformer width,
        one int; `steps` and `levels` do not apply).

    Raises:
      OptionError: an option that does not apply to the flow and kind, or several channel
        counts for an image conditioner.
    """
    image = kind == "image"
    given = dict(levels=levels, steps=steps, coupling=coupling, lu=lu, split_prior=split_prior,
                 logit_alpha=logit_alpha, learn_prior=learn_prior, bins=bins, transform=transform,
                 patch_size=patch_size, blocks=blocks, layers_per_block=layers_per_block)
    applies = {
        "levels": flow == "glow" or (flow == "realnvp" and image),
        "coupling": flow == "glow", "lu": flow == "glow", "split_prior": flow == "glow",
        "logit_alpha": flow == "realnvp" and image, "learn_prior": flow == "realnvp" and image,
        "bins": flow == "nsf" or (flow == "maf" and (transform or base.get("transform")) == "spline"),
        "transform": flow == "maf",
        "steps": flow != "tarflow",
        "patch_size": flow == "tarflow", "blocks": flow == "tarflow", "layers_per_block": flow == "tarflow",
    }
    for opt, ok in applies.items():
        if given[opt] is not None and not ok:
            raise OptionError(f"{opt} does not apply to flow {flow} on {kind} data.", opt, flow, kind, given[opt])
    kw = dict(base)
    steps_key = {"glow": "steps", "realnvp": "couplings_per_stage", "nice": "couplings", "nsf": "couplings",
                 "maf": "layers", "tarflow": "blocks"}[flow]
    for key, value in ((steps_key, steps), ("levels", levels), ("coupling", coupling), ("lu", lu),
                       ("logit_alpha", logit_alpha), ("bins", bins), ("transform", transform),
                       ("patch_size", patch_size), ("blocks", blocks), ("layers_per_block", layers_per_block)):
        if value is not None:
            kw[key] = value
    if learn_prior:
        kw["learn_prior"] = True
    if split_prior is not None:
        value = SPLIT_PRIORS.get(split_prior, split_prior) if isinstance(split_prior, str) else split_prior
        if value not in (True, False, "channel"):
            raise OptionError(f"split_prior must be one of {', '.join(SPLIT_PRIORS)}; got {split_prior!r}.",
                              "split_prior", flow, kind, split_prior)
        kw["split_prior"] = value
    if hidden is not None:
        hidden = tuple(hidden) if isinstance(hidden, (list, tuple)) else (int(hidden),)
        if flow in ("glow", "tarflow") or (flow == "realnvp" and image):  # one channel count
            if len(hidden) != 1:
                raise OptionError(f"hidden for {flow} on images is one channel count; got {hidden}.",
                                  "hidden", flow, kind, hidden)
            kw[{"glow": "hidden_channels", "tarflow": "width"}.get(flow, "hidden")] = hidden[0]
        else:  # MLP units: one count for every layer, or the list of them
            kw["hidden"] = list(hidden) if len(hidden) > 1 else [hidden[0]] * len(base["hidden"])
    return kw


def recipe_for(kind, shape, flow=None, data_name=None, **overrides):
    """The `Recipe` for data of `kind` (`image` or `vector`) and `shape`, explicit overrides first.

    Args:
      kind: `"image"` (`shape = [H, W, C]`) or `"vector"` (`shape = [D]`).
      shape: the shape of one example, Python ints.
      flow: `glow`, `realnvp`, `nice`, `nsf`, `maf`, or `None` for the kind's default (glow
        for images, realnvp for vectors). nsf and maf flatten images to vectors.
      data_name: the data source's name; `digits` (8x8) has its own schedule.
      **overrides: model options (`MODEL_OPTIONS`, see `_with_model_options`) and `Recipe` fields
        (`epochs`, `learning_rate`, `n_bits`, ...; `flow_kwargs` replaces the builder
        arguments the model options then change). `None` means not given.

    Raises:
      ValueError: an unknown kind or flow, images of varying size.
      OptionError: `n_bits` for vectors, glow on vectors, a model option that does not apply
        to the flow and kind, or several channel counts for an image conditioner.
      TypeError: an unknown override.
    """
    if kind not in ("image", "vector"):
        raise ValueError(f"kind must be 'image' or 'vector'; received {kind!r}.")
    image = kind == "image"
    flow = flow or default_flow(kind)
    if flow not in FLOWS:
        raise ValueError(f"unknown flow {flow!r}; expected one of {', '.join(FLOWS)}.")
    shape = tuple(shape)
    options = {k: overrides.pop(k) for k in MODEL_OPTIONS if k in overrides}
    if not image and overrides.get("n_bits") is not None:
        raise OptionError("n_bits applies to image data; this is vector data.", "n_bits", flow, kind,
                          overrides["n_bits"])
    if any(d is None for d in shape):
        what = repr(data_name) if data_name else "the data"
        raise ValueError(f"{what} has images of varying size {list(shape)}; the flows need one fixed size.")
    if flow in ("glow", "tarflow") and not image:
        raise OptionError(f"{flow} works on images [H, W, C]; this is vector data of shape {list(shape)}.",
                          "flow", flow, kind, flow)
    if not image and overrides.get("noise_sigma"):
        raise OptionError("noise_sigma applies to image data; this is vector data.", "noise_sigma", flow, kind,
                          overrides["noise_sigma"])
    if not image and overrides.get("dequantization") == "variational":
        raise OptionError("variational dequantization applies to image data; this is vector data.",
                          "dequantization", flow, kind, "variational")
    recipe = _default_recipe(image, shape, flow, data_name).merged(**overrides)
    return recipe.merged(flow_kwargs=_with_model_options(flow, kind, recipe.flow_kwargs, **options))


def conditional_label_dropout(flow):
    """The default `label_dropout` of a class-conditional `flow`: `LABEL_DROPOUT` for TarFlow (its
    samples take classifier-free guidance), 0 for the others."""
    return LABEL_DROPOUT if flow == "tarflow" else 0.0


def build_model(data_name="digits", flow=None, *, recipe=None, info=None, data_dir=None, strategy=None,
                jit_compile="auto", **overrides):
    """A compiled, untrained `FlowModel` for a data source, and the `Recipe` it follows.

    Args:
      data_name: a data source, as `splits.load_split` takes it.
      flow: `glow`, `realnvp`, `nice`, `nsf`, `maf`, or `None` for the data kind's default.
      recipe: build this `Recipe` as it is (say, a resumed run's) instead of
        `recipe_for(..., **overrides)`; then `flow` and overrides must not be given.
      info: the data's `tfp_glow.data.DataInfo`, if known; else the train split is loaded
        (`splits.load_split`, with `data_dir`) to learn the data's kind and shape.
      strategy: a `tf.distribute.Strategy` to build the model under (default: the current one).
      jit_compile: passed to `FlowModel.compile`.
      **overrides: as `recipe_for` takes them: model options and `Recipe` fields.

    Returns:
      `(model, recipe)`: the model compiled with Adam at `recipe.learning_rate`, its warmup,
      schedule (over `total_steps(recipe, info.num_examples)` steps), clipping and weight
      average; `recipe.epochs`, `batch_size` and `steps_per_epoch` are for `fit`.

    Raises:
      ValueError: as `recipe_for` and `splits.load_split` do.
      TypeError: `recipe` together with `flow` or overrides, or an unknown override.
    """
    if recipe is not None and (flow is not None or overrides):
        raise TypeError("build_model: give either recipe or flow and overrides, not both.")
    if info is None:
        _, info = splits.load_split(data_name, "train", data_dir=data_dir)
    if recipe is None:
        recipe = recipe_for(info.kind, info.shape, flow, data_name, **overrides)
    steps = None
    if recipe.lr_schedule == "cosine":
        steps = total_steps(recipe, info.num_examples)
        if steps is None:
            raise ValueError(f"lr_schedule 'cosine' decays over the run's steps, and the number of training "
                             f"examples of {data_name!r} is unknown: give steps_per_epoch.")
    with (strategy or tf.distribute.get_strategy()).scope():
        model = make_flow_model(FlowConfig(recipe.flow, tuple(info.shape), recipe.flow_kwargs), n_bits=recipe.n_bits,
                                dequantization=recipe.dequantization, noise_sigma=recipe.noise_sigma or 0.0,
                                label_dropout=recipe.label_dropout)
        model.compile(keras.optimizers.Adam(recipe.learning_rate), warmup_steps=recipe.warmup_steps,
                      clip_norm=recipe.clip_norm or None, jit_compile=jit_compile, ema_decay=recipe.ema_decay or None,
                      lr_schedule=recipe.lr_schedule, total_steps=steps)
    return model, recipe

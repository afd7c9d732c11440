"""Variants of our side of `tfp-glow bench --quality`: one setting changed at a time, for an
ablation against the peer in one run.

A variant is `NAME:key=value,key=value` on the command line (`--ours`, repeatable). Every
key of `OURS_OPTIONS` changes one thing that differs between our Glow and normflows' (or that
the best likelihood models add for long runs); `ours_settings` checks the values and splits
them into what the model builder, the optimizer and `FlowModel.compile` take.

    --ours base:                               # the recipe's settings
    --ours smin0:scale_min=0                   # no floor under the coupling's density-pass scale
    --ours eps8:epsilon=1e-8                   # PyTorch's Adam epsilon (Keras': 1e-7)
    --ours torchinit:conv_init=torch           # PyTorch's default init of the conditioner convs
    --ours ema:ema=0.999                       # Polyak averaging of the weights for evaluation
    --ours cos:lr_schedule=cosine              # cosine decay to 0 at the last --step-budget
    --ours b95:beta2=0.95                      # Adam's second-moment decay of TarFlow's reference
    --ours tarflow:flow=tarflow                # our TarFlow with the CLI's recipe (`--flow tarflow`)

A `flow=tarflow` variant takes the architecture, learning rate, warmup, clip and weight average
of `tfp-glow train --flow tarflow` (`recipes.recipe_for`) for the bench's data, so it is our
TarFlow as a user gets it; `lr`, `warmup`, `clip`, `ema` and the TarFlow keys (`patch_size`,
`width`, `blocks`, `layers_per_block`) change it. The batch size is the bench's, shared by every
side. The Glow-only keys are refused on it.
"""
import math

import keras
import numpy as np

from tfp_glow import recipes
from tfp_glow.numerics import precision


def _float(lo=None, hi=None, lo_open=False, hi_open=False):
    def parse(text):
        v = float(text)
        if not math.isfinite(v) or (lo is not None and (v < lo or (lo_open and v == lo))) or (
                hi is not None and (v > hi or (hi_open and v == hi))):
            raise ValueError
        return v
    return parse


def _choice(*names):
    def parse(text):
        if text not in names:
            raise ValueError
        return text
    return parse


def _bool(text):
    t = text.lower()
    if t not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError
    return t in ("true", "1", "yes")


def _int(lo):
    def parse(text):
        v = int(text)
        if v < lo:
            raise ValueError
        return v
    return parse


def _clip(text):
    return None if text.lower() in ("none", "off", "0") else _float(0.0, lo_open=True)(text)


#: key -> (parser, what it accepts, what it changes)
OURS_OPTIONS = {
    "scale_min": (_float(0.0, 1.0, hi_open=True), "a float in [0, 1)",
                  "the floor s_min of the coupling's density-pass scale (default 0.05; normflows: 0)"),
    "split_prior": (lambda t: "channel" if t == "channel" else _bool(t), "true, false or channel",
                    "learned conditional priors at the splits (channel: per channel, as normflows' GlowBase)"),
    "learn_top": (_bool, "true or false", "the learned top prior"),
    "prior_logscale": (_float(0.0), "a float >= 0",
                       "openai/glow's logscale_factor on the conditional split priors' output (0: none)"),
    "epsilon": (_float(0.0, lo_open=True), "a float > 0", "Adam's epsilon (Keras 1e-7, PyTorch 1e-8)"),
    "optimizer": (_choice("adam", "adamax", "adamw"), "adam, adamax or adamw",
                  "the optimizer (Adamax: Flow++, DenseFlow; AdamW with weight decay 1e-4: TarFlow's reference)"),
    "beta2": (_float(0.0, 1.0, lo_open=True, hi_open=True), "a float in (0, 1)",
              "Adam's second-moment decay (Keras 0.999; TarFlow's reference 0.95)"),
    "ema": (_float(0.0, 1.0, hi_open=True), "a float in [0, 1)",
            "decay of the moving average of the weights used for evaluation (0: off)"),
    "lr_schedule": (_choice("constant", "cosine"), "constant or cosine",
                    "the learning rate after warmup (cosine: to 0 at the last step budget)"),
    "mixed_precision": (_choice(*precision.CHOICES), ", ".join(precision.CHOICES),
                        "the Keras mixed-precision policy of the conditioner networks (default auto, as the CLI's: "
                        "mixed_bfloat16 where the hardware has native bf16)"),
    "conv_init": (_choice("keras", "torch"), "keras or torch",
                  "initialisation of the conditioners' hidden convs (torch: PyTorch's default uniform)"),
    "lr": (_float(0.0, lo_open=True), "a float > 0", "the learning rate"),
    "warmup": (_int(0), "an integer >= 0", "linear warmup steps"),
    "clip": (_clip, "a float > 0 or none", "the global gradient-norm clip"),
    "flow": (_choice("glow", "tarflow"), "glow or tarflow",
             "the flow (tarflow: the CLI's TarFlow recipe for the data, tfp_glow.recipes)"),
    "patch_size": (_int(1), "an integer >= 1", "tarflow: the patch side p (tokens of p x p pixels)"),
    "width": (_int(1), "an integer >= 1", "tarflow: the transformer width"),
    "blocks": (_int(1), "an integer >= 1", "tarflow: autoregressive blocks"),
    "layers_per_block": (_int(1), "an integer >= 1", "tarflow: transformer layers per block"),
}
GLOW_ONLY = ("scale_min", "split_prior", "learn_top", "prior_logscale", "conv_init")
TARFLOW_ONLY = ("patch_size", "width", "blocks", "layers_per_block")


def parse_options(options):
    """`{key: text}` -> `{key: value}`; a `ValueError` naming the key and what it takes."""
    out = {}
    for key, text in options.items():
        if key not in OURS_OPTIONS:
            raise ValueError(f"--ours: unknown key {key!r}; expected one of {', '.join(OURS_OPTIONS)}.")
        parse, what, _ = OURS_OPTIONS[key]
        try:
            out[key] = parse(str(text))
        except ValueError:
            raise ValueError(f"--ours: {key} must be {what}; received {text!r}.") from None
    return out


def _tarflow_defaults(cfg):
    """`(flow_kwargs, lr, warmup, clip, ema)` of `tfp-glow train --flow tarflow` on `cfg["data"]`."""
    r = recipes.recipe_for("image", tuple(cfg["shape"]), "tarflow", cfg["data"])
    return dict(r.flow_kwargs), float(r.learning_rate), int(r.warmup_steps or 0), r.clip_norm or None, r.ema_decay


def flow_of(cfg, options):
    """`(flow, builder arguments)` of a variant with `options` (`{key: text}`) under `cfg`,
    without building anything; a `ValueError` as `ours_settings` gives."""
    flow, flow_kwargs, _ = _flow_and_defaults(cfg, parse_options(options))
    return flow, flow_kwargs


def _flow_and_defaults(cfg, o):
    """`(flow, flow_kwargs, (lr, warmup, clip, ema))` of the parsed options `o`: the flow's
    builder arguments and the training defaults the options start from."""
    flow = o.get("flow", "glow")
    foreign = [k for k in (GLOW_ONLY if flow == "tarflow" else TARFLOW_ONLY) if k in o]
    if foreign:
        raise ValueError(f"--ours: {', '.join(foreign)} {'is' if len(foreign) == 1 else 'are'} not an option of "
                         f"flow={flow}" + ("" if flow == "tarflow" else " (add flow=tarflow)") + ".")
    if flow == "tarflow":
        flow_kwargs, *training = _tarflow_defaults(cfg)
        flow_kwargs.update({k: o[k] for k in TARFLOW_ONLY if k in o})
        return flow, flow_kwargs, tuple(training)
    flow_kwargs = dict(levels=cfg["levels"], steps=cfg["steps"], hidden_channels=cfg["hidden"],
                       split_prior=cfg.get("split_prior", True))
    for key in ("scale_min", "split_prior", "learn_top"):
        if key in o:
            flow_kwargs[key] = o[key]
    if o.get("prior_logscale"):
        flow_kwargs["prior_logscale_factor"] = o["prior_logscale"]
    return flow, flow_kwargs, (cfg["learning_rate"], cfg["warmup_steps"], cfg["clip_norm"], cfg.get("ema_decay"))


def ours_settings(cfg, options):
    """What to build and compile for a variant with `options` (`{key: text}`) under `cfg`.

    Returns a dict: `flow` (`"glow"` or `"tarflow"`), `flow_kwargs` (for its builder), `optimizer`
    (a fresh Keras optimizer), `compile` (keyword arguments of `FlowModel.compile`),
    `mixed_precision` (resolved: `auto`, the default as in `tfp-glow train`, becomes
    `mixed_bfloat16` on hardware with native bf16, else `none`) and `conv_init`.

    Raises:
      ValueError: a bad value, a key of the other flow, or `lr_schedule=cosine` without a step
        budget (the schedule needs to know where the run ends).
    """
    o = parse_options(options)
    flow, flow_kwargs, (lr, warmup, clip, ema) = _flow_and_defaults(cfg, o)
    lr = o.get("lr", lr)
    compile_kwargs = dict(warmup_steps=o.get("warmup", warmup), clip_norm=o.get("clip", clip),
                          max_nonfinite_steps=None)
    if o.get("lr_schedule") == "cosine":
        if not cfg["step_budgets"]:
            raise ValueError("--ours lr_schedule=cosine needs --step-budget: it decays to 0 at the last one.")
        # FlowModel.compile's: constant through the warmup, then a half cosine to 0 at the last budget
        compile_kwargs.update(lr_schedule="cosine", total_steps=int(cfg["step_budgets"][-1]))
    name = o.get("optimizer", "adam")
    cls = {"adam": keras.optimizers.Adam, "adamax": keras.optimizers.Adamax, "adamw": keras.optimizers.AdamW}[name]
    opt_kwargs = {"epsilon": o["epsilon"]} if "epsilon" in o else {}
    if "beta2" in o:
        opt_kwargs["beta_2"] = o["beta2"]
    if name == "adamw":
        opt_kwargs["weight_decay"] = 1e-4  # the reference's (Keras' default: 4e-3)
    ema = o.get("ema", ema)  # the recipe's, unless the variant sets it (0: off)
    if ema:
        compile_kwargs["ema_decay"] = ema
    return dict(flow=flow, flow_kwargs=flow_kwargs, optimizer=cls(lr, **opt_kwargs), learning_rate=lr,
                compile=compile_kwargs,
                mixed_precision=precision.resolve_policy(o.get("mixed_precision", "auto")),
                conv_init=o.get("conv_init", "keras"))


def torch_default_init(model, seed=0):
    """Re-draw every hidden conv of the coupling networks as PyTorch's `nn.Conv2d` does.

    PyTorch: kernel and bias `~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))` (`kaiming_uniform_` with
    `a = sqrt(5)`); Keras: Glorot-uniform kernels and zero biases. Zero-initialised output
    layers stay zero, so every coupling still starts as the identity.

    Args:
      model: a built `FlowModel`.
      seed: numpy seed of the draw.
    Returns:
      The number of convolutions re-drawn.
    """
    rng = np.random.default_rng(seed)
    count = 0
    for layer in model.flow_layers:
        for sub in getattr(layer, "_flatten_layers", lambda: [layer])():
            if not isinstance(sub, keras.layers.Conv2D) or not np.any(keras.ops.convert_to_numpy(sub.kernel)):
                continue
            kh, kw, cin, cout = sub.kernel.shape
            bound = 1.0 / math.sqrt(kh * kw * cin)
            sub.kernel.assign(rng.uniform(-bound, bound, sub.kernel.shape).astype(np.float32))
            if sub.bias is not None:
                sub.bias.assign(rng.uniform(-bound, bound, sub.bias.shape).astype(np.float32))
            count += 1
    return count

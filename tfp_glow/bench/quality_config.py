"""`tfp-glow bench --quality`: its options, checked and completed from the CLI's recipes.

The parser itself (`build_parser`, re-exported here) is `quality_options`, standard library only.

`resolve_config` turns the options into the configuration dict both sides get (raising a
`ValueError` that names the option for a bad one); `child_argv` writes it back as the command
line of one side's child process, every value explicit.
"""
import math
import os
import sys

import numpy as np

from tfp_glow import recipes
from tfp_glow.bench import quality_variants

# the parser and its constants import no TensorFlow (`tfp-glow bench --quality --help`)
from tfp_glow.bench.quality_options import DATA_SHAPES, JSON_TAG, PROG, SIDES, build_parser  # noqa: F401


def recipe_defaults(data_name):
    """Architecture and training defaults for `data_name`: `(dict, source)`, the CLI's own
    (`tfp_glow.recipes.recipe_for`)."""
    shape = DATA_SHAPES[data_name]
    r = recipes.recipe_for("image", shape, "glow", data_name)
    fk = dict(r.flow_kwargs)
    return dict(levels=int(fk["levels"]), steps=int(fk["steps"]), hidden=int(fk["hidden_channels"]),
                batch_size=int(r.batch_size), learning_rate=float(r.learning_rate),
                warmup_steps=int(r.warmup_steps or 0),
                clip_norm=None if not r.clip_norm else float(r.clip_norm),
                split_prior=fk.get("split_prior", True), ema_decay=r.ema_decay), "tfp_glow.recipes.recipe_for"


def positive_int(value, name):
    """`value` as an int if it is a positive integer, else a `ValueError` naming option `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; received {value!r}.")
    return int(value)


def _number_list(value, name, cast, what):
    """`value` (a number, a sequence, or text `"300,600"`) as a sorted list of distinct positive
    numbers, else a `ValueError` naming option `name`."""
    items = value.split(",") if isinstance(value, str) else (value if isinstance(value, (list, tuple)) else [value])
    out = []
    for item in items:
        try:
            v = cast(str(item).strip()) if isinstance(item, str) else cast(item)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be {what}; received {value!r}.") from None
        if isinstance(item, bool) or not math.isfinite(v) or v <= 0 or (cast is int and v != float(item)):
            raise ValueError(f"{name} must be {what}; received {value!r}.")
        out.append(v)
    if not out:
        raise ValueError(f"{name} must be {what}; received {value!r}.")
    return sorted(set(out))


def parse_variant(text):
    """`"NAME:key=value,key=value"` (or `"key=value,..."`, named after its options) as
    `(name, {key: text})`; a bare `NAME` has no options. The values are checked by
    `quality_variants.parse_options`."""
    if ":" in text:
        name, _, spec = text.partition(":")
    else:  # a bare name, or bare options
        name, spec = ("", text) if "=" in text else (text, "")
    options = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise ValueError(f"--ours takes NAME:key=value,key=value; {part!r} in {text!r} is not key=value.")
        options[key.strip()] = value.strip()
    name = name.strip() or ("ours" if not options else ",".join(f"{k}={v}" for k, v in options.items()))
    if name in SIDES[1:]:
        raise ValueError(f"--ours variant name {name!r} is the peer's name; choose another.")
    return name, options


def resolve_config(data="digits28", budget=600.0, levels=None, steps=None, hidden=None, batch_size=None,
                   learning_rate=None, warmup_steps=None, clip_norm=None, seed=0, which=SIDES,
                   curve_every=10, out="bench_quality", clip_norm_given=False, torch_threads=None,
                   step_budget=None, seeds=1, variants=None, flow="glow"):
    """Check the options and fill the unset ones from the recipe (or fallback); returns a dict.

    `clip_norm=None` means "the default" unless `clip_norm_given` (then it means off).
    `budget` is one or several wall-clock budgets in seconds (`"300,600,1800"`): each side
    trains once, to the largest, and its test bits/dim is measured at every one of them (the
    clock stops while it is measured). `step_budget` does the same in optimizer steps, for
    equal-step curves, and replaces the seconds. `seeds` repeats every side with seeds
    `seed .. seed + seeds - 1`. `variants` are our side's settings, `"NAME:key=value,..."`
    each (`quality_variants.OURS_OPTIONS`), for an ablation in one run; default one, `ours`.

    Raises:
      ValueError: with a message naming the option and what it accepts.
    """
    if data not in DATA_SHAPES:
        raise ValueError(f"unknown --data {data!r}; choose from {', '.join(DATA_SHAPES)} (offline image sets).")
    if step_budget is not None:
        step_budgets = _number_list(step_budget, "--step-budget", int, "positive step counts, comma-separated")
        budgets, budget = [], None
    else:
        step_budgets = []
        budgets = _number_list(budget, "--budget", float, "a number of seconds > 0 (or several, comma-separated)")
        budget = budgets[-1]
    seeds = positive_int(seeds, "--seeds")
    # with --flow tarflow and no --ours, our two sides are named by their flows
    parsed = [parse_variant(v) for v in (variants or ["glow:" if flow == "tarflow" else "ours"])]
    if flow not in ("glow", "tarflow"):
        raise ValueError(f"--flow must be glow or tarflow; received {flow!r}.")
    if flow == "tarflow" and not any(o.get("flow") == "tarflow" for _, o in parsed):
        parsed.append(("tarflow", {"flow": "tarflow"}))
    names = [n for n, _ in parsed]
    if len(set(names)) != len(names):
        raise ValueError(f"--ours variants need distinct names; received {names}.")
    if isinstance(which, str):
        which = [w.strip() for w in which.split(",") if w.strip()]
    which = list(dict.fromkeys(which))
    bad = [w for w in which if w not in SIDES]
    if bad or not which:
        raise ValueError(f"--which takes a comma-separated subset of {','.join(SIDES)}; received "
                         f"{','.join(which) if which else 'nothing'}.")
    defaults, source = recipe_defaults(data)
    given = dict(levels=levels, steps=steps, hidden=hidden, batch_size=batch_size, learning_rate=learning_rate,
                 warmup_steps=warmup_steps)
    cfg = {k: (defaults[k] if v is None else v) for k, v in given.items()}
    cfg["clip_norm"] = (clip_norm if clip_norm_given or clip_norm is not None else defaults["clip_norm"])
    for k in ("levels", "steps", "hidden", "batch_size"):
        cfg[k] = positive_int(cfg[k], "--" + k.replace("_", "-"))
    if isinstance(cfg["warmup_steps"], bool) or not isinstance(cfg["warmup_steps"], (int, np.integer)) \
            or cfg["warmup_steps"] < 0:
        raise ValueError(f"--warmup-steps must be an integer >= 0; received {cfg['warmup_steps']!r}.")
    if not (isinstance(cfg["learning_rate"], (int, float)) and math.isfinite(cfg["learning_rate"])
            and cfg["learning_rate"] > 0):
        raise ValueError(f"--lr must be a number > 0; received {cfg['learning_rate']!r}.")
    if cfg["clip_norm"] is not None and not (math.isfinite(cfg["clip_norm"]) and cfg["clip_norm"] > 0):
        raise ValueError(f"--clip-norm must be a number > 0, or 'none' for no clipping; received {cfg['clip_norm']!r}.")
    shape = DATA_SHAPES[data]
    f = 2 ** cfg["levels"]
    if shape[0] % f or shape[1] % f:
        fit = max(l for l in range(1, 8) if shape[0] % 2 ** l == 0 and shape[1] % 2 ** l == 0)
        raise ValueError(f"--levels {cfg['levels']} squeezes {cfg['levels']} times and needs the image side "
                         f"divisible by {f}, but {data} images are {shape[0]}x{shape[1]}; use --levels {fit} or fewer.")
    positive_int(curve_every, "--curve-every")
    torch_threads = os.cpu_count() if torch_threads is None else positive_int(torch_threads, "--torch-threads")
    # the recipe's priors and weight average: our side is the CLI's Glow (variants change them)
    cfg.update(split_prior=defaults["split_prior"], ema_decay=defaults["ema_decay"])
    cfg.update(data=data, shape=list(shape), budget=budget, budgets=budgets, step_budgets=step_budgets,
               seed=int(seed), seeds=[int(seed) + i for i in range(seeds)], variants=dict(parsed), which=which,
               curve_every=int(curve_every), out=out, torch_threads=int(torch_threads), defaults_source=source)
    for name, options in cfg["variants"].items():  # a bad variant fails here, not in its child
        try:
            quality_variants.ours_settings(cfg, options)
        except ValueError as e:
            raise ValueError(f"variant {name!r}: {e}") from None
    return cfg


def tarflow_kwargs(cfg):
    """`{variant: builder arguments}` of the variants that run TarFlow."""
    flows = {name: quality_variants.flow_of(cfg, o) for name, o in cfg["variants"].items()}
    return {name: kwargs for name, (flow, kwargs) in flows.items() if flow == "tarflow"}


def budget_points(cfg):
    """`[(unit, value), ...]`: where a side's test bits/dim is measured, in order; the last one
    ends its run. `unit` is `"s"` (wall clock) or `"step"`."""
    if cfg["step_budgets"]:
        return [("step", int(v)) for v in cfg["step_budgets"]]
    return [("s", float(v)) for v in cfg["budgets"]]


def run_labels(cfg):
    """The labels of the runs, in order: our variants (if `ours` is asked for), then the peer."""
    labels = list(cfg["variants"]) if "ours" in cfg["which"] else []
    return labels + [s for s in cfg["which"] if s != "ours"]


def config_from_args(args):
    """`resolve_config` of parsed options (`build_parser`)."""
    given = hasattr(args, "clip_norm")  # absent: the recipe's default
    return resolve_config(data=args.data, budget=args.budget, levels=args.levels, steps=args.steps,
                          hidden=args.hidden, batch_size=args.batch_size, learning_rate=args.lr,
                          warmup_steps=args.warmup_steps, clip_norm=getattr(args, "clip_norm", None),
                          clip_norm_given=given, seed=args.seed, which=args.which, curve_every=args.curve_every,
                          out=args.out, torch_threads=args.torch_threads, step_budget=args.step_budget,
                          seeds=args.seeds, variants=args.ours, flow=args.flow)


def child_argv(side, cfg, seed=None, variant=None):
    """The command line of one run's subprocess, every value explicit: `side` with `seed`
    (default `cfg["seed"]`) and, for ours, the named `variant` of `cfg["variants"]`."""
    if cfg["step_budgets"]:
        budget = ["--step-budget", ",".join(str(v) for v in cfg["step_budgets"])]
    else:
        budget = ["--budget", ",".join(repr(v) for v in cfg["budgets"])]
    ours = []
    if side == "ours":
        variant = variant or next(iter(cfg["variants"]))
        spec = ",".join(f"{k}={v}" for k, v in cfg["variants"][variant].items())
        ours = ["--ours", f"{variant}:{spec}"]
    seed = cfg["seed"] if seed is None else seed
    return [sys.executable, "-m", "tfp_glow.bench", "--quality", "--child", side, "--data", cfg["data"],
            *budget, *ours, "--levels", str(cfg["levels"]), "--steps", str(cfg["steps"]),
            "--hidden", str(cfg["hidden"]), "--batch-size", str(cfg["batch_size"]),
            "--lr", repr(cfg["learning_rate"]), "--warmup-steps", str(cfg["warmup_steps"]),
            "--clip-norm", "none" if cfg["clip_norm"] is None else repr(cfg["clip_norm"]),
            "--seed", str(seed), "--curve-every", str(cfg["curve_every"]), "--which", side,
            "--torch-threads", str(cfg["torch_threads"])]

"""`tfp-glow bench --quality`: our Glow against PyTorch normflows' Glow, quality per wall clock.

Run `tfp-glow bench --quality --help` (or `python -m tfp_glow.bench --quality --help`).

Both Glows (L levels, K steps, `hidden` channels, affine sigmoid couplings, LU 1x1 convs) train
on the same offline images (`digits28`: uint8 28x28x1, 1293 train / 360 test; `photos32`:
uint8 32x32x3, 6000 train / 1000 test) for the same wall-clock budget, with the same batch
size, Adam learning rate, linear warmup, global-norm clipping and seed, then are measured alike:

- **test bits/dim** with one fixed dequantization noise pattern
  (`np.random.default_rng(1234).uniform(size=(H, W, C))`, ours' `FlowModel.eval_noise`),
  broadcast over the test images;
- **img/s**: training images per second of training wall time. Ours is timed from the call of
  `model.fit` (so the tracing of its first step counts) to the end of the last step; the
  PyTorch peer from its first step to its last. ActNorm's data-dependent initialisation runs
  before the clock on both sides and is reported separately (`init s`); so is the first step;
- **steps** done in the budget, and **non-finite steps** skipped (a step whose loss or
  gradient is not finite never reaches the weights);
- **finite samples**: the fraction of 64 samples at temperature 1.0 and 0.7 with every value
  finite;
- a **curve** `(elapsed s, step, mean train bits/dim over the batches since the previous
  point)` every `--curve-every` steps, drawn as `bits_per_dim_vs_time.png`.

Each side runs in its own subprocess (`python -m tfp_glow.bench --quality --child ours|normflows`,
printing one `QUALITY_JSON` line), one after the other, so thread pools and memory do not
interfere. Results go to `--out` (default `bench_quality/`): `results.json` and the PNG.

The PyTorch side needs `torch` and `normflows` (`pip install "tfp_glow[bench]"`); without them
it is reported as unavailable and ours still runs. `import tfp_glow` never imports torch.
"""
import argparse
import importlib.util
import inspect
import json
import math
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfp_glow import callbacks as callbacks_lib  # noqa: E402
from tfp_glow import data as data_lib  # noqa: E402
from tfp_glow import models, plots, recipes, training  # noqa: E402

PROG = "tfp-glow bench --quality"
SIDES = ("ours", "normflows")
DATA_SHAPES = {"digits28": (28, 28, 1), "photos32": (32, 32, 3)}
EVAL_SEED = 1234  # FlowModel's default eval_seed: the fixed test noise of both sides
TEMPERATURES = (1.0, 0.7)
N_SAMPLES = 64
JSON_TAG = "QUALITY_JSON "

PEER_INSTALL_HINT = (
    'install them with `pip install "tfp_glow[bench]"` (or `pip install torch normflows`; note that '
    "PyTorch from PyPI brings CUDA libraries of several GB, and the CPU wheel is "
    "`pip install torch --index-url https://download.pytorch.org/whl/cpu`)")


# ------------------------------------------------------------------------------ configuration
def recipe_defaults(data_name):
    """Architecture and training defaults for `data_name`: `(dict, source)`, the CLI's own
    (`tfp_glow.recipes.recipe_for`)."""
    shape = DATA_SHAPES[data_name]
    r = recipes.recipe_for("image", shape, "glow", data_name)
    fk = dict(r.flow_kwargs)
    return dict(levels=int(fk["levels"]), steps=int(fk["steps"]), hidden=int(fk["hidden_channels"]),
                batch_size=int(r.batch_size), learning_rate=float(r.learning_rate),
                warmup_steps=int(r.warmup_steps or 0),
                clip_norm=None if not r.clip_norm else float(r.clip_norm)), "tfp_glow.recipes.recipe_for"


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; received {value!r}.")
    return int(value)


def resolve_config(data="digits28", budget=600.0, levels=None, steps=None, hidden=None, batch_size=None,
                   learning_rate=None, warmup_steps=None, clip_norm=None, seed=0, which=SIDES,
                   curve_every=10, out="bench_quality", clip_norm_given=False, torch_threads=None):
    """Check the options and fill the unset ones from the recipe (or fallback); returns a dict.

    `clip_norm=None` means "the default" unless `clip_norm_given` (then it means off).

    Raises:
      ValueError: with a message naming the option and what it accepts.
    """
    if data not in DATA_SHAPES:
        raise ValueError(f"unknown --data {data!r}; choose from {', '.join(DATA_SHAPES)} (offline image sets).")
    try:
        budget = float(budget)
    except (TypeError, ValueError):
        raise ValueError(f"--budget must be a number of seconds > 0; received {budget!r}.") from None
    if not math.isfinite(budget) or budget <= 0:
        raise ValueError(f"--budget must be a number of seconds > 0; received {budget!r}.")
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
        cfg[k] = _positive_int(cfg[k], "--" + k.replace("_", "-"))
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
    _positive_int(curve_every, "--curve-every")
    torch_threads = os.cpu_count() if torch_threads is None else _positive_int(torch_threads, "--torch-threads")
    cfg.update(data=data, shape=list(shape), budget=budget, seed=int(seed), which=which,
               curve_every=int(curve_every), out=out, torch_threads=int(torch_threads), defaults_source=source)
    return cfg


def _clip_arg(text):
    if str(text).strip().lower() in ("none", "off", "0", "0.0"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0 or 'none'; received {text!r}") from None


def build_parser(prog=PROG):
    p = argparse.ArgumentParser(
        prog=prog,
        description="Quality per wall clock: our Glow (Keras fit) against PyTorch normflows' Glow with the "
                    "same architecture, data, optimizer and budget. Each side trains in its own subprocess for "
                    "--budget seconds; the table shows test bits/dim (fixed dequantization noise), img/s, steps, "
                    "non-finite steps skipped, first-step time, finite samples at T=1.0 and 0.7 and parameter "
                    "counts. Writes results.json and bits_per_dim_vs_time.png into --out.",
        epilog="Examples:\n"
               "  tfp-glow bench --quality --data digits28 --budget 60\n"
               "  tfp-glow bench --quality --data photos32 --budget 600 --warmup-steps 200 --clip-norm 50\n"
               "  tfp-glow bench --quality --which ours --budget 30\n"
               "Defaults of the architecture and training are the CLI's (tfp_glow.recipes). "
               "The normflows side needs torch and normflows: pip install \"tfp_glow[bench]\".",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits28", help=f"image set: {', '.join(DATA_SHAPES)} (default digits28)")
    p.add_argument("--budget", type=float, default=600.0, help="training seconds per side (default 600)")
    a = p.add_argument_group("architecture (default: the recipe for --data)")
    a.add_argument("--levels", type=int, default=None, help="L, levels/squeezes")
    a.add_argument("--steps", type=int, default=None, help="K, flow steps per level")
    a.add_argument("--hidden", type=int, default=None, help="coupling network width")
    t = p.add_argument_group("training (default: the recipe for --data)")
    t.add_argument("--batch-size", type=int, default=None, help="batch size")
    t.add_argument("--lr", type=float, default=None, help="Adam learning rate")
    t.add_argument("--warmup-steps", type=int, default=None, help="linear learning-rate warmup steps (0: none)")
    t.add_argument("--clip-norm", type=_clip_arg, default=argparse.SUPPRESS,
                   help="global gradient-norm clip, or 'none' for no clipping")
    t.add_argument("--seed", type=int, default=0, help="seed of both sides (default 0)")
    r = p.add_argument_group("run")
    r.add_argument("--which", default=",".join(SIDES), help="sides to run, comma-separated (default ours,normflows)")
    r.add_argument("--curve-every", type=int, default=10, help="steps between curve points (default 10)")
    r.add_argument("--out", default="bench_quality", help="output directory (default bench_quality/)")
    r.add_argument("--torch-threads", type=int, default=None,
                   help="torch intra-op threads of the normflows side (default: all CPU cores, os.cpu_count()); "
                        "on a machine other processes load, 1 can be several times faster")
    p.add_argument("--child", choices=SIDES, default=None, help=argparse.SUPPRESS)
    return p


def config_from_args(args):
    given = hasattr(args, "clip_norm")  # absent: the recipe's default
    return resolve_config(data=args.data, budget=args.budget, levels=args.levels, steps=args.steps,
                          hidden=args.hidden, batch_size=args.batch_size, learning_rate=args.lr,
                          warmup_steps=args.warmup_steps, clip_norm=getattr(args, "clip_norm", None),
                          clip_norm_given=given, seed=args.seed, which=args.which, curve_every=args.curve_every,
                          out=args.out, torch_threads=args.torch_threads)


def child_argv(side, cfg):
    """The command line of one side's subprocess, every value explicit."""
    return [sys.executable, "-m", "tfp_glow.bench", "--quality", "--child", side, "--data", cfg["data"],
            "--budget", repr(cfg["budget"]), "--levels", str(cfg["levels"]), "--steps", str(cfg["steps"]),
            "--hidden", str(cfg["hidden"]), "--batch-size", str(cfg["batch_size"]),
            "--lr", repr(cfg["learning_rate"]), "--warmup-steps", str(cfg["warmup_steps"]),
            "--clip-norm", "none" if cfg["clip_norm"] is None else repr(cfg["clip_norm"]),
            "--seed", str(cfg["seed"]), "--curve-every", str(cfg["curve_every"]), "--which", side,
            "--torch-threads", str(cfg["torch_threads"])]


# ---------------------------------------------------------------------------------- our side
def _finite_fraction(x):
    x = np.asarray(x)
    return float(np.isfinite(x.reshape(len(x), -1)).all(axis=1).mean())


def compile_ours(model, learning_rate, warmup_steps, clip_norm):
    """`model.compile` with warmup and clipping where `FlowModel.compile` takes them.

    Returns a note for the report: how the optimizer was set up.
    """
    params = inspect.signature(training.FlowModel.compile).parameters
    if "warmup_steps" in params:
        # like the peer, never give up on a run of non-finite steps: skip them all and count them
        extra = {"max_nonfinite_steps": None} if "max_nonfinite_steps" in params else {}
        model.compile(learning_rate=learning_rate, warmup_steps=warmup_steps, clip_norm=clip_norm, **extra)
        return "FlowModel.compile(learning_rate, warmup_steps, clip_norm)"
    model.compile(keras.optimizers.Adam(learning_rate))
    note = "Adam(lr) (FlowModel.compile takes no warmup_steps/clip_norm yet)"
    if warmup_steps or clip_norm:
        note += f": warmup {warmup_steps} and clip {clip_norm} NOT applied to ours"
    return note


class WallClockBudget(keras.callbacks.Callback):
    """Stops `fit` once `budget_s` seconds have passed since `t0`; records a bits/dim curve.

    Every `curve_every` steps (and after step 1 and the last step) it appends
    `(elapsed s, step, mean train bits/dim since the previous point)`: it reads the model's
    `bits_per_dim` metric and then resets that metric alone, so each point averages its window.
    """

    def __init__(self, budget_s, curve_every=10, t0=None, metric="bits_per_dim"):
        super().__init__()
        self.budget_s = float(budget_s)
        self.curve_every = int(curve_every)
        self.t0 = t0
        self.metric = metric
        self.curve = []
        self.steps = 0
        self.first_step_s = None
        self.t_first_end = None
        self.t_last_end = None
        self.last_logs = {}

    def on_train_begin(self, logs=None):
        if self.t0 is None:
            self.t0 = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        if self.steps == 0:
            self._t_first_begin = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.steps += 1
        self.t_last_end = now
        if self.steps == 1:
            self.first_step_s = now - self._t_first_begin
            self.t_first_end = now
        elapsed = now - self.t0
        done = elapsed >= self.budget_s
        self.last_logs = dict(logs or {})
        if self.steps == 1 or self.steps % self.curve_every == 0 or done:
            value = float(self.last_logs.get(self.metric, float("nan")))
            self.curve.append([elapsed, self.steps, value])
            for m in self.model.metrics:
                if m.name == self.metric:
                    m.reset_state()
        if done:
            self.model.stop_training = True


def _nonfinite_from(model, logs):
    """Our non-finite-step count, where the training code reports one (a log or an attribute)."""
    for key, value in logs.items():
        k = key.lower().replace("_", "").replace("-", "")
        if "nonfinite" in k or "skipped" in k:
            return int(round(float(value)))
    for attr in ("nonfinite_steps", "skipped_steps", "non_finite_steps"):
        value = getattr(model, attr, None)
        if value is not None:
            try:
                return int(np.asarray(value))
            except (TypeError, ValueError):
                pass
    return None


def run_ours(cfg):
    """Train our Glow for the budget with `fit` and measure it; returns the results dict."""
    train_x, _ = data_lib.get_source(cfg["data"], "train")
    test_x, _ = data_lib.get_source(cfg["data"], "test")
    shape = tuple(int(d) for d in train_x.shape[1:])
    keras.utils.set_random_seed(cfg["seed"])
    t_init = time.perf_counter()
    model = training.FlowModel(models.FlowConfig(
        "glow", shape, dict(levels=cfg["levels"], steps=cfg["steps"], hidden_channels=cfg["hidden"])), n_bits=8,
        eval_seed=EVAL_SEED)
    optimizer_note = compile_ours(model, cfg["learning_rate"], cfg["warmup_steps"], cfg["clip_norm"])
    ds = data_lib.make_dataset(train_x, cfg["batch_size"], shuffle=True, seed=cfg["seed"], drop_remainder=True,
                               repeat=True)
    if not model.is_initialized:  # what fit would do first, here before the clock starts
        for first in ds.take(1):
            model.initialize(first)
    init_s = time.perf_counter() - t_init

    budget = WallClockBudget(cfg["budget"], cfg["curve_every"])
    budget.t0 = time.perf_counter()
    stopped = None
    try:
        model.fit(ds, epochs=1, steps_per_epoch=10 ** 9, callbacks=[budget], verbose=0, shuffle=False)
    except callbacks_lib.NonFiniteLossError as e:  # FlowModel gave up on a run of non-finite steps
        stopped = str(e)
    if not budget.steps:
        raise RuntimeError(f"our model did not finish a single training step: {stopped}")
    steps = budget.steps
    train_s = budget.t_last_end - budget.t0

    t_eval = time.perf_counter()
    test = model.evaluate(data_lib.make_dataset(test_x, 256, shuffle=False), return_dict=True, verbose=0)
    finite = {f"{t:.1f}": _finite_fraction(model.sample(N_SAMPLES, temperature=t, seed=0)) for t in TEMPERATURES}
    eval_s = time.perf_counter() - t_eval
    after = budget.t_last_end - budget.t_first_end
    weights_finite = all(bool(np.isfinite(np.asarray(v)).all()) for v in model.trainable_variables)
    return {
        "status": "ok",
        "test_bpd": float(test["bits_per_dim"]),
        "img_per_s": steps * cfg["batch_size"] / train_s,
        "img_per_s_after_first": (steps - 1) * cfg["batch_size"] / after if steps > 1 and after > 0 else None,
        "steps": steps,
        "nonfinite_steps": _nonfinite_from(model, budget.last_logs),
        "first_step_s": budget.first_step_s,
        "train_s": train_s,
        "init_s": init_s,
        "eval_s": eval_s,
        "finite_samples": finite,
        "params": models.count_parameters(model.distribution),
        "curve": budget.curve,
        "final_train_bpd": budget.curve[-1][2] if budget.curve else None,
        "weights_finite": weights_finite,
        "optimizer": optimizer_note,
        "jit_compile": bool(model.jit_compile),
        "stopped_early": stopped,
    }


# ---------------------------------------------------------------------------- the torch side
def peer_missing_message(detail=None):
    msg = "normflows side unavailable: it needs torch and normflows"
    if detail:
        msg += f" ({detail})"
    return msg + "; " + PEER_INSTALL_HINT + "."


def peer_unavailable():
    """`None` if torch and normflows can be found, else the message (without importing them)."""
    missing = []
    for name in ("torch", "normflows"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return peer_missing_message(f"missing: {', '.join(missing)}") if missing else None


def run_normflows(cfg):
    """Train normflows' Glow for the budget (`tfp_glow.bench.baselines_torch`); an
    "unavailable" record if torch or normflows cannot be imported."""
    try:
        from tfp_glow.bench import baselines_torch
    except ImportError as e:
        return {"status": "unavailable", "message": peer_missing_message(str(e))}
    train_x, _ = data_lib.get_source(cfg["data"], "train")
    test_x, _ = data_lib.get_source(cfg["data"], "test")
    return baselines_torch.train_for_budget(
        train_x, test_x, cfg["levels"], cfg["steps"], cfg["hidden"], batch_size=cfg["batch_size"],
        learning_rate=cfg["learning_rate"], warmup_steps=cfg["warmup_steps"], clip_norm=cfg["clip_norm"],
        seed=cfg["seed"], budget_s=cfg["budget"], curve_every=cfg["curve_every"], eval_seed=EVAL_SEED,
        threads=cfg["torch_threads"])


def run_child(side, cfg):
    """One side, in this process: the results dict (never raises for a missing peer)."""
    return run_ours(cfg) if side == "ours" else run_normflows(cfg)


# ---------------------------------------------------------------------------------- parent
def _cpu_snapshot():
    """`(busy CPU seconds of the whole machine, CPU seconds of our finished children)`, or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # guest time is already in user
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return busy, ru.ru_utime + ru.ru_stime


def _others_cpu_cores(before, after, seconds):
    """Mean number of cores other processes kept busy while a child ran (machine minus child)."""
    if before is None or after is None or seconds <= 0:
        return None
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / seconds)


def run_side(side, cfg, timeout=None):
    """Run one side in a fresh subprocess; returns its results dict (status ok/unavailable/failed)."""
    if side == "normflows":
        msg = peer_unavailable()
        if msg:
            return {"status": "unavailable", "message": msg}
    timeout = timeout or cfg["budget"] * 1.5 + 900
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    cpu0 = _cpu_snapshot()
    t = time.perf_counter()
    try:
        out = subprocess.run(child_argv(side, cfg), capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "message": f"timed out after {timeout:.0f} s"}
    for line in out.stdout.splitlines():
        if line.startswith(JSON_TAG):
            res = json.loads(line[len(JSON_TAG):])
            res["process_s"] = time.perf_counter() - t
            res["others_cpu_cores"] = _others_cpu_cores(cpu0, _cpu_snapshot(), res["process_s"])
            return res
    tail = [l for l in (out.stderr.strip().splitlines() or ["no output"]) if l.strip()][-3:]
    return {"status": "failed", "message": f"exit code {out.returncode}: " + " | ".join(tail)[-500:]}


def _fmt(v, spec):
    if v is None:
        return "n/a"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return format(v, spec)


ROWS = [
    ("test bits/dim (fixed noise)", lambda r: r.get("test_bpd"), ".3f"),
    ("last train bits/dim (window)", lambda r: r.get("final_train_bpd"), ".3f"),
    ("img/s (training wall time)", lambda r: r.get("img_per_s"), ".1f"),
    ("img/s after the first step", lambda r: r.get("img_per_s_after_first"), ".1f"),
    ("steps", lambda r: r.get("steps"), "d"),
    ("non-finite steps skipped", lambda r: r.get("nonfinite_steps"), "d"),
    ("first step, s", lambda r: r.get("first_step_s"), ".1f"),
    ("build + ActNorm init (unclocked), s", lambda r: r.get("init_s"), ".1f"),
    ("finite samples, T=1.0", lambda r: (r.get("finite_samples") or {}).get("1.0"), ".2f"),
    ("finite samples, T=0.7", lambda r: (r.get("finite_samples") or {}).get("0.7"), ".2f"),
    ("parameters", lambda r: r.get("params"), ",d"),
    ("other processes' CPU during it, cores", lambda r: r.get("others_cpu_cores"), ".2f"),
]


def format_table(results, cfg):
    """The side-by-side table as text; `results` maps a side to its results dict."""
    sides = [s for s in SIDES if s in results]
    labels = {"ours": "ours (Keras fit)", "normflows": "normflows (torch)"}
    width = 37
    lines = [f"{'':{width}s}" + "".join(f"{labels[s]:>20s}" for s in sides),
             "-" * (width + 20 * len(sides))]
    for label, get, spec in ROWS:
        cells = []
        for s in sides:
            r = results[s]
            if r.get("status") != "ok":
                cells.append(r.get("status", "?"))
            else:
                cells.append(_fmt(get(r), spec))
        lines.append(f"{label:{width}s}" + "".join(f"{c:>20s}" for c in cells))
    notes = []
    for s in sides:
        r = results[s]
        if r.get("status") != "ok":
            notes.append(f"  {s}: {r.get('status')}: {r.get('message', '')}")
    r = results.get("ours", {})
    if r.get("status") == "ok":
        if r.get("nonfinite_steps") is None:
            notes.append("  ours: no non-finite-step count reported by FlowModel (n/a); weights finite at the end: "
                         f"{r.get('weights_finite')}.")
        if r.get("stopped_early"):
            notes.append(f"  ours: stopped before the budget: {r['stopped_early']}")
        if r.get("optimizer"):
            notes.append(f"  ours: optimizer {r['optimizer']}.")
    busy = [s for s in sides if (results[s].get("others_cpu_cores") or 0) > 0.25]
    if busy:
        notes.append(f"  other processes used the CPU while {', '.join(busy)} ran: wall-clock figures are "
                     "unreliable. torch's OpenMP threads suffer most (on a loaded 2-core machine, 2 threads ran "
                     "4x slower than 1); rerun on an idle machine, or try --torch-threads 1.")
    if results.get("normflows", {}).get("status") == "ok":
        notes.append("  parameters: both store full C x C L and U matrices in their LU 1x1 convs (only the strict "
                     "triangles train). Ours adds learned priors per top-level position and, at each split, "
                     "conditional on the kept half (a 3x3 conv); normflows' GlowBase bases learn a mean and scale "
                     "per channel only.")
    return "\n".join(lines + notes)


def plot_curves(results, cfg, path):
    """Train bits/dim against wall-clock seconds for every side with a curve, as a PNG."""
    fig = plots._figure(1, size=5.5)
    ax = fig.subplots()
    drew = False
    for side in SIDES:
        r = results.get(side, {})
        curve = r.get("curve") or []
        if r.get("status") != "ok" or not curve:
            continue
        t = [c[0] for c in curve]
        y = [c[2] for c in curve]
        line, = ax.plot(t, y, label=f"{side}: train (window mean)", lw=1.2)
        if r.get("test_bpd") is not None and math.isfinite(r["test_bpd"]):
            ax.plot([t[-1]], [r["test_bpd"]], marker="*", ms=11, color=line.get_color(), ls="none",
                    label=f"{side}: test {r['test_bpd']:.3f}")
        drew = True
    if not drew:
        return None
    finite = [c[2] for s in SIDES for c in (results.get(s, {}).get("curve") or []) if math.isfinite(c[2])]
    tests = [r["test_bpd"] for r in results.values()
             if r.get("status") == "ok" and r.get("test_bpd") is not None and math.isfinite(r["test_bpd"])]
    if finite:  # the first points (about 8 bits/dim) would flatten the rest
        lo, hi = min(finite + tests), max(float(np.percentile(finite, 95)), *tests) if tests else float(
            np.percentile(finite, 95))
        ax.set_ylim(lo - 0.1 * (hi - lo + 0.1), hi + 0.25 * (hi - lo + 0.1))
    ax.set_xlabel("training wall-clock, s")
    ax.set_ylabel("bits/dim")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(f"Glow L={cfg['levels']} K={cfg['steps']} h={cfg['hidden']} on {cfg['data']}, "
                 f"batch {cfg['batch_size']}", fontsize=10)
    fig.tight_layout()
    return plots._save_figure(fig, path)


def describe(cfg):
    clip = "off" if cfg["clip_norm"] is None else f"{cfg['clip_norm']:g}"
    return (f"{cfg['data']} {cfg['shape']}: Glow L={cfg['levels']} K={cfg['steps']} hidden {cfg['hidden']}, "
            f"batch {cfg['batch_size']}, Adam lr {cfg['learning_rate']:g}, warmup {cfg['warmup_steps']} steps, "
            f"clip {clip}, seed {cfg['seed']}, {cfg['budget']:g} s per side (defaults: {cfg['defaults_source']})")


def run(cfg, stream=None):
    """Run the requested sides one after the other; print the table; write the JSON and PNG."""
    say = lambda *a: print(*a, file=stream or sys.stdout, flush=True)  # noqa: E731
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    say(f"{PROG}: {describe(cfg)}")
    say(f"  {os.cpu_count()} CPU cores, load average {load} at start; each side in its own subprocess")
    results = {}
    for side in cfg["which"]:
        say(f"  running {side} ...")
        results[side] = run_side(side, cfg)
        r = results[side]
        if r.get("status") == "ok":
            say(f"  {side}: {r['steps']} steps in {r['train_s']:.0f} s, test bits/dim {r['test_bpd']:.3f}")
        else:
            say(f"  {side}: {r['status']}: {r.get('message', '')}")
    say("")
    say(format_table(results, cfg))
    os.makedirs(cfg["out"], exist_ok=True)
    png = plot_curves(results, cfg, os.path.join(cfg["out"], "bits_per_dim_vs_time.png"))
    path = os.path.join(cfg["out"], "results.json")
    with open(path, "w") as f:
        json.dump({"config": cfg, "results": results, "cpu_count": os.cpu_count(),
                   "load_average_end": os.getloadavg()}, f, indent=1)
    say(f"\n  wrote {path}" + (f" and {png}" if png else ""))
    return results


def main(argv=None):
    """Entry point of `tfp-glow bench --quality`; returns an exit code (2 for bad options)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    if args.child:
        res = run_child(args.child, cfg)
        print(JSON_TAG + json.dumps(res), flush=True)
        return 0
    results = run(cfg)
    failed = [s for s, r in results.items() if r.get("status") == "failed"]
    return 1 if failed else 0


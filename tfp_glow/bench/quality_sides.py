"""What one child process of `tfp-glow bench --quality` runs: one side, trained and measured.

`run_ours` trains our Glow (one variant, `quality_variants`) with `FlowModel.fit` under a
`BudgetCallback`, which measures test bits/dim at every budget point with the clock stopped;
`run_normflows` hands the same configuration to the PyTorch peer
(`tfp_glow.bench.baselines_torch`), imported here only when that side runs, since it imports
torch and normflows (an "unavailable" record when they are missing). Both return the same
JSON-ready results dict.
"""
import importlib.util
import time

import keras
import numpy as np

from tfp_glow.training import callbacks as callbacks_lib
from tfp_glow import data as data_lib
from tfp_glow import models, training
from tfp_glow.numerics import precision
from tfp_glow.bench import quality_config, quality_variants

EVAL_SEED = 1234  # FlowModel's default eval_seed: the fixed test noise of both sides
TEMPERATURES = (1.0, 0.7)
N_SAMPLES = 64

PEER_INSTALL_HINT = (
    'install them with `pip install "tfp_glow[bench]"` (or `pip install torch normflows`; note that '
    "PyTorch from PyPI brings CUDA libraries of several GB, and the CPU wheel is "
    "`pip install torch --index-url https://download.pytorch.org/whl/cpu`)")


# ---------------------------------------------------------------------------------- our side
def _finite_fraction(x):
    x = np.asarray(x)
    return float(np.isfinite(x.reshape(len(x), -1)).all(axis=1).mean())


class BudgetCallback(keras.callbacks.Callback):
    """Stops `fit` at the last budget point; measures test bits/dim at every one; records a curve.

    `points` are `quality_config.budget_points`: `("s", seconds)` since `t0`, or
    `("step", n)`. When a point is reached, `measure()` runs (test bits/dim) with the clock
    stopped: its time is added to `t0`, so elapsed seconds count training only. Every
    `curve_every` steps (and after step 1 and the last step) it appends
    `(elapsed s, step, mean train bits/dim since the previous point, largest gradient norm
    since then)`: it reads the model's `bits_per_dim` metric and then resets that metric alone,
    so each point averages its window; `clipped_steps` counts the steps whose norm the clip cut.
    """

    def __init__(self, points, curve_every=10, measure=None, t0=None, metric="bits_per_dim"):
        super().__init__()
        self.points = list(points)
        self.curve_every = int(curve_every)
        self.measure = measure
        self.t0 = t0
        self.metric = metric
        self.curve = []
        self.at_budget = []
        self.steps = 0
        self.first_step_s = None
        self.t_first_end = None
        self.last_logs = {}
        self.clipped_steps = 0
        self._window_max_norm = 0.0

    def on_train_begin(self, logs=None):
        if self.t0 is None:
            self.t0 = time.perf_counter()
        self.t0_start = self.t0

    def on_train_batch_begin(self, batch, logs=None):
        if self.steps == 0:
            self._t_first_begin = time.perf_counter()

    def _track_grad_norm(self):
        """This step's global gradient norm before clipping (the model's `grad_norm` metric, read
        and reset every step): counts the steps the clip at `clip_norm` scaled down."""
        tracker = getattr(self.model, "grad_norm_tracker", None)
        if tracker is None:
            return
        norm = float(tracker.result())
        tracker.reset_state()
        self._window_max_norm = max(self._window_max_norm, norm)
        clip = getattr(self.model, "clip_norm", None)
        self.clipped_steps += int(bool(clip) and norm > clip)

    def _reached(self, elapsed):
        unit, value = self.points[len(self.at_budget)]
        return (elapsed if unit == "s" else self.steps) >= value

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.steps += 1
        if self.steps == 1:
            self.first_step_s = now - self._t_first_begin
            self.t_first_end = now
        elapsed = now - self.t0
        self.train_s = elapsed  # training time only: measurements stop the clock
        reached = self._reached(elapsed)
        self.last_logs = dict(logs or {})
        self._track_grad_norm()
        if self.steps == 1 or self.steps % self.curve_every == 0 or reached:
            value = float(self.last_logs.get(self.metric, float("nan")))
            self.curve.append([elapsed, self.steps, value, self._window_max_norm])
            self._window_max_norm = 0.0
            for m in self.model.metrics:
                if m.name == self.metric:
                    m.reset_state()
        while reached:  # a slow step may pass several points at once
            t = time.perf_counter()
            unit, value = self.points[len(self.at_budget)]
            test = self.measure() if self.measure else None
            self.at_budget.append({"unit": unit, "budget": value, "elapsed_s": elapsed, "step": self.steps,
                                   "test_bpd": test, "measure_s": time.perf_counter() - t})
            self.t0 += time.perf_counter() - t
            reached = len(self.at_budget) < len(self.points) and self._reached(elapsed)
        if len(self.at_budget) == len(self.points):
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


def _kwargs_text(kwargs):
    return " ".join(f"{k}={v}" for k, v in kwargs.items())


def build_ours(cfg, shape, options):
    """Our compiled `FlowModel` for a variant (`quality_variants.ours_settings`); returns
    `(model, note)`, the note saying how it was set up."""
    s = quality_variants.ours_settings(cfg, options)
    keras.mixed_precision.set_global_policy("float32" if s["mixed_precision"] == "none" else s["mixed_precision"])
    model = training.FlowModel(models.FlowConfig(s["flow"], shape, s["flow_kwargs"]), n_bits=8, eval_seed=EVAL_SEED)
    if s["conv_init"] == "torch":
        quality_variants.torch_default_init(model, cfg["seed"])
    model.compile(s["optimizer"], **s["compile"])
    opt = model.optimizer
    note = (f"{s['flow']} {_kwargs_text(s['flow_kwargs'])}, {type(opt).__name__}(epsilon={opt.epsilon:g}), beta_2 {opt.beta_2:g}, "
            f"lr {s['learning_rate']:g}, warmup {s['compile']['warmup_steps']}, clip "
            f"{s['compile']['clip_norm']}, policy {keras.mixed_precision.dtype_policy().name}")
    return model, note + "".join(f", {k}={v}" for k, v in options.items())


class _Float32Figures:
    """Calling it gives the model to measure: `model` in float32, else a float32 twin
    (`precision.float32_for_figures`, built once) holding `model`'s current weights, as the
    CLI reports a mixed-precision model's figures."""

    def __init__(self, model):
        self.model, self.twin = model, None

    def __call__(self):
        if not precision.uses_reduced_precision(self.model):
            return self.model
        if self.twin is None:
            self.twin = precision.float32_for_figures(self.model)
        else:
            self.twin.set_weights(self.model.get_weights())
        return self.twin


def run_ours(cfg, variant=None):
    """Train our Glow (one variant of `cfg["variants"]`) with `fit` to its budgets and measure it."""
    train_x, _ = data_lib.get_source(cfg["data"], "train")
    test_x, _ = data_lib.get_source(cfg["data"], "test")
    shape = tuple(int(d) for d in train_x.shape[1:])
    variant = variant or next(iter(cfg["variants"]))
    keras.utils.set_random_seed(cfg["seed"])
    t_init = time.perf_counter()
    model, optimizer_note = build_ours(cfg, shape, cfg["variants"][variant])
    ds = data_lib.make_dataset(train_x, cfg["batch_size"], shuffle=True, seed=cfg["seed"], drop_remainder=True,
                               repeat=True)
    if not model.is_initialized:  # what fit would do first, here before the clock starts
        for first in ds.take(1):
            model.initialize(first)
    init_s = time.perf_counter() - t_init
    test_ds = data_lib.make_dataset(test_x, 256, shuffle=False)
    figures = _Float32Figures(model)
    measure = lambda: float(figures().evaluate(test_ds, return_dict=True, verbose=0)["bits_per_dim"])  # noqa: E731

    budget = BudgetCallback(quality_config.budget_points(cfg), cfg["curve_every"], measure=measure)
    budget.t0 = time.perf_counter()
    stopped = None
    try:
        model.fit(ds, epochs=1, steps_per_epoch=10 ** 9, callbacks=[budget], verbose=0, shuffle=False)
    except callbacks_lib.NonFiniteLossError as e:  # FlowModel gave up on a run of non-finite steps
        stopped = str(e)
    if not budget.steps:
        raise RuntimeError(f"our model did not finish a single training step: {stopped}")
    steps = budget.steps
    train_s = budget.train_s

    t_eval = time.perf_counter()
    test_bpd = budget.at_budget[-1]["test_bpd"] if len(budget.at_budget) == len(budget.points) else measure()
    finite = {f"{t:.1f}": _finite_fraction(figures().sample(N_SAMPLES, temperature=t, seed=0)) for t in TEMPERATURES}
    eval_s = time.perf_counter() - t_eval
    after = train_s - (budget.t_first_end - budget.t0_start)
    weights_finite = all(bool(np.isfinite(np.asarray(v)).all()) for v in model.trainable_variables)
    return {
        "status": "ok",
        "variant": variant,
        "seed": cfg["seed"],
        "test_bpd": test_bpd,
        "at_budget": budget.at_budget,
        "img_per_s": steps * cfg["batch_size"] / train_s,
        "img_per_s_after_first": (steps - 1) * cfg["batch_size"] / after if steps > 1 and after > 0 else None,
        "steps": steps,
        "clipped_steps": budget.clipped_steps,
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
    """Why the normflows side cannot run, and how to install what it needs."""
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
        # here, not at the top: baselines_torch imports torch and normflows, which only this
        # side's child process may load, and which may be missing
        from tfp_glow.bench import baselines_torch
    except ImportError as e:
        return {"status": "unavailable", "message": peer_missing_message(str(e))}
    train_x, _ = data_lib.get_source(cfg["data"], "train")
    test_x, _ = data_lib.get_source(cfg["data"], "test")
    return baselines_torch.train_for_budget(
        train_x, test_x, cfg["levels"], cfg["steps"], cfg["hidden"], batch_size=cfg["batch_size"],
        learning_rate=cfg["learning_rate"], warmup_steps=cfg["warmup_steps"], clip_norm=cfg["clip_norm"],
        seed=cfg["seed"], budget_points=quality_config.budget_points(cfg), curve_every=cfg["curve_every"],
        eval_seed=EVAL_SEED, threads=cfg["torch_threads"])


def run_child(side, cfg, variant=None):
    """One side, in this process: the results dict (never raises for a missing peer)."""
    return run_ours(cfg, variant) if side == "ours" else run_normflows(cfg)

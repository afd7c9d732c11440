"""`tfp-glow bench --quality`'s output: the side-by-side table and the bits/dim-vs-time plot."""
import math

import numpy as np

from tfp_glow import plots
from tfp_glow.bench.quality_config import SIDES


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
    """The configuration in one line, for the head of the report."""
    clip = "off" if cfg["clip_norm"] is None else f"{cfg['clip_norm']:g}"
    return (f"{cfg['data']} {cfg['shape']}: Glow L={cfg['levels']} K={cfg['steps']} hidden {cfg['hidden']}, "
            f"batch {cfg['batch_size']}, Adam lr {cfg['learning_rate']:g}, warmup {cfg['warmup_steps']} steps, "
            f"clip {clip}, seed {cfg['seed']}, {cfg['budget']:g} s per side (defaults: {cfg['defaults_source']})")

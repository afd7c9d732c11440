"""`tfp-glow bench --quality`'s output: the budget table (mean and spread over seeds), the
side-by-side table, and the curves against steps and against seconds."""
import math

import numpy as np

from tfp_glow.plots import canvas
from tfp_glow.bench.quality_config import budget_points, tarflow_kwargs


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
    ("steps the clip cut", lambda r: r.get("clipped_steps"), "d"),
    ("first step, s", lambda r: r.get("first_step_s"), ".1f"),
    ("build + ActNorm init (unclocked), s", lambda r: r.get("init_s"), ".1f"),
    ("finite samples, T=1.0", lambda r: (r.get("finite_samples") or {}).get("1.0"), ".2f"),
    ("finite samples, T=0.7", lambda r: (r.get("finite_samples") or {}).get("0.7"), ".2f"),
    ("parameters", lambda r: r.get("params"), ",d"),
    ("other processes' CPU during it, cores", lambda r: r.get("others_cpu_cores"), ".2f"),
]


def _ok_runs(rs):
    return [r for r in rs if r.get("status") == "ok"]


def _point_label(unit, value):
    return f"{value:g} s" if unit == "s" else f"step {int(value):,d}"


def summarize(runs, cfg):
    """Test bits/dim at every budget point over the seeds, per label.

    Returns:
      `{label: [{"unit", "budget", "n", "mean", "sd", "min", "max", "steps", "elapsed_s"}, ...]}`
      (`sd` is the sample standard deviation, `None` for one seed; `steps` and `elapsed_s`
      are means over the seeds).
    """
    out = {}
    for label, rs in runs.items():
        rows = []
        for i, (unit, value) in enumerate(budget_points(cfg)):
            recs = [r["at_budget"][i] for r in _ok_runs(rs) if len(r.get("at_budget") or []) > i]
            vals = [rec["test_bpd"] for rec in recs if rec.get("test_bpd") is not None]
            finite = [v for v in vals if math.isfinite(v)]
            rows.append({
                "unit": unit, "budget": value, "n": len(vals),
                "mean": float(np.mean(vals)) if vals else None,
                "sd": float(np.std(finite, ddof=1)) if len(finite) > 1 else None,
                "min": float(min(vals)) if vals else None, "max": float(max(vals)) if vals else None,
                "steps": float(np.mean([rec["step"] for rec in recs])) if recs else None,
                "elapsed_s": float(np.mean([rec["elapsed_s"] for rec in recs])) if recs else None})
        out[label] = rows
    return out


def _mean_of(rs, get):
    vals = [get(r) for r in _ok_runs(rs)]
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return float(np.mean(vals)) if isinstance(vals[0], float) else (
        int(round(np.mean(vals))) if isinstance(vals[0], int) else vals[0])


def format_budget_table(runs, cfg):
    """Test bits/dim per budget point (rows) and label (columns): `mean ± sd (n)` over the seeds,
    the steps reached, and each label's difference to the peer's mean."""
    summary = summarize(runs, cfg)
    labels = list(runs)
    width, col = 22, 26
    lines = [f"{'budget (test bits/dim)':{width}s}" + "".join(f"{l[:col - 2]:>{col}s}" for l in labels),
             "-" * (width + col * len(labels))]
    peer = summary.get("normflows")
    for i, (unit, value) in enumerate(budget_points(cfg)):
        cells = []
        for label in labels:
            row = summary[label][i]
            if row["mean"] is None:
                cells.append("n/a")
                continue
            text = f"{row['mean']:.3f}" + (f" ± {row['sd']:.3f}" if row["sd"] is not None else "")
            if label != "normflows" and peer and peer[i]["mean"] is not None:
                text += f" ({row['mean'] - peer[i]['mean']:+.3f})"
            extra = f"{row['steps']:,.0f} st" if unit == "s" else f"{row['elapsed_s']:,.0f} s"
            cells.append(f"{text} {extra}")
        lines.append(f"{_point_label(unit, value):{width}s}" + "".join(f"{c:>{col}s}" for c in cells))
    n = len(cfg["seeds"])
    lines.append(f"  mean ± sample sd over {n} seed{'s' * (n > 1)} {cfg['seeds']}; (+x): against normflows' mean; "
                 + ("st: mean steps reached." if cfg["budgets"] else "s: mean training seconds to reach it."))
    return "\n".join(lines)


def format_table(runs, cfg):
    """The budget table, then the side-by-side table of the other figures (means over the seeds)
    as text; `runs` maps a label to its results dicts, one per seed."""
    labels = list(runs)
    names = {"ours": "ours (Keras fit)", "normflows": "normflows (torch)"}
    width = 37
    lines = [format_budget_table(runs, cfg), "",
             f"{'':{width}s}" + "".join(f"{names.get(l, l)[:19]:>20s}" for l in labels),
             "-" * (width + 20 * len(labels))]
    for label, get, spec in ROWS:
        cells = []
        for l in labels:
            rs = runs[l]
            if not _ok_runs(rs):
                cells.append(rs[0].get("status", "?") if rs else "n/a")
            else:
                cells.append(_fmt(_mean_of(rs, get), spec))
        lines.append(f"{label:{width}s}" + "".join(f"{c:>20s}" for c in cells))
    notes = []
    for l in labels:
        for r in runs[l]:
            if r.get("status") != "ok":
                notes.append(f"  {l} (seed {r.get('seed', '?')}): {r.get('status')}: {r.get('message', '')}")
    for l in labels:
        ok = _ok_runs(runs[l])
        if l == "normflows" or not ok:
            continue
        r = ok[0]
        if r.get("nonfinite_steps") is None:
            notes.append(f"  {l}: no non-finite-step count reported by FlowModel (n/a); weights finite at the end: "
                         f"{r.get('weights_finite')}.")
        for rr in ok:
            if rr.get("stopped_early"):
                notes.append(f"  {l}: stopped before the budget: {rr['stopped_early']}")
        if r.get("optimizer"):
            notes.append(f"  {l}: {r['optimizer']}.")
    busy = [l for l in labels if any((r.get("others_cpu_cores") or 0) > 0.25 for r in runs[l])]
    if busy:
        notes.append(f"  other processes used the CPU while {', '.join(busy)} ran: wall-clock figures are "
                     "unreliable. torch's OpenMP threads suffer most (on a loaded 2-core machine, 2 threads ran "
                     "4x slower than 1); rerun on an idle machine, or try --torch-threads 1.")
    if _ok_runs(runs.get("normflows", [])):
        notes.append("  parameters: both store full C x C L and U matrices in their LU 1x1 convs (only the strict "
                     "triangles train). Ours adds learned priors per top-level position and, at each split, "
                     "conditional on the kept half (a 3x3 conv); normflows' GlowBase bases learn a mean and scale "
                     "per channel only.")
    return "\n".join(lines + notes)


def _ylim(ax, runs):
    finite = [c[2] for rs in runs.values() for r in _ok_runs(rs) for c in (r.get("curve") or [])
              if math.isfinite(c[2])]
    tests = [rec["test_bpd"] for rs in runs.values() for r in _ok_runs(rs) for rec in (r.get("at_budget") or [])
             if rec.get("test_bpd") is not None and math.isfinite(rec["test_bpd"])]
    if finite:  # the first points (about 8 bits/dim) would flatten the rest
        lo = min(finite + tests)
        hi = max([float(np.percentile(finite, 90))] + tests)
        ax.set_ylim(lo - 0.1 * (hi - lo + 0.1), hi + 0.25 * (hi - lo + 0.1))


def plot_curves(runs, cfg, path):
    """Train bits/dim (window means, one thin line per seed) and test bits/dim at the budget
    points (mean over the seeds, bars from min to max), against steps and against seconds,
    for every label, as a two-panel PNG; `None` when no run has a curve."""
    fig = canvas.new_figure(2, size=5.5)
    axes = fig.subplots(1, 2)
    drew = False
    colors = plots_colors(len(runs))
    summary = summarize(runs, cfg)
    for (label, rs), color in zip(runs.items(), colors):
        ok = [r for r in _ok_runs(rs) if r.get("curve")]
        for axis, ax in ((1, axes[0]), (0, axes[1])):
            for j, r in enumerate(ok):
                curve = r["curve"]
                ax.plot([c[axis] for c in curve], [c[2] for c in curve], lw=0.8, alpha=0.55, color=color,
                        label=f"{label}: train" if j == 0 else None)
            rows = [row for row in summary[label] if row["mean"] is not None]
            if rows:
                x = [row["steps"] if axis == 1 else row["elapsed_s"] for row in rows]
                y = [row["mean"] for row in rows]
                err = [[row["mean"] - row["min"] for row in rows], [row["max"] - row["mean"] for row in rows]]
                ax.errorbar(x, y, yerr=err, fmt="o", ms=6, color=color, capsize=3, mec="black", mew=0.6,
                            label=f"{label}: test " + ", ".join(f"{v:.3f}" for v in y))
        drew = drew or bool(ok)
    if not drew:
        return None
    for ax, xlabel in ((axes[0], "optimizer steps"), (axes[1], "training wall-clock, s")):
        _ylim(ax, runs)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("bits/dim")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    n = len(cfg["seeds"])
    fig.suptitle(f"{architectures(cfg)} on {cfg['data']}, batch "
                 f"{cfg['batch_size']}, {n} seed{'s' * (n > 1)}: train (lines) and test (points, min-max)",
                 fontsize=10)
    fig.tight_layout()
    return canvas.save_figure(fig, path)


def plots_colors(n):
    """`n` matplotlib colours: blue, red, green, orange first (our variants, then the peer), then
    the rest of the default cycle, repeating after ten."""
    order = ["C0", "C3", "C2", "C1", "C4", "C5", "C6", "C7", "C8", "C9"]
    return [order[i % len(order)] for i in range(n)]


def architectures(cfg, long=False):
    """"Glow L=.. K=.. h=.." and, for TarFlow variants, "TarFlow p=.. w=.. 4x4" (blocks x layers)."""
    tarflows = tarflow_kwargs(cfg)
    runs_glow = any(name not in tarflows for name in cfg["variants"]) or any(w != "ours" for w in cfg["which"])
    glow = [f"Glow L={cfg['levels']} K={cfg['steps']} " + ("hidden " if long else "h=") + str(cfg["hidden"])]
    tar = [f"TarFlow p={k['patch_size']} w={k['width']} {k['blocks']}x{k['layers_per_block']}"
           + (f" ({name})" if long else "") for name, k in tarflows.items()]
    return ", ".join(glow * runs_glow + list(dict.fromkeys(tar)))


def describe(cfg):
    """The configuration in one line, for the head of the report."""
    clip = "off" if cfg["clip_norm"] is None else f"{cfg['clip_norm']:g}"
    budget = (", ".join(_point_label(u, v) for u, v in budget_points(cfg)))
    variants = "; ".join(f"{k}: " + (",".join(f"{a}={b}" for a, b in v.items()) or "recipe")
                         for k, v in cfg["variants"].items())
    return (f"{cfg['data']} {cfg['shape']}: {architectures(cfg, long=True)}, "
            f"batch {cfg['batch_size']}, Adam lr {cfg['learning_rate']:g}, warmup {cfg['warmup_steps']} steps, "
            f"clip {clip}, seeds {cfg['seeds']}, budgets {budget} (defaults: {cfg['defaults_source']}); "
            f"our variants: {variants}")

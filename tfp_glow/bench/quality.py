"""`tfp-glow bench --quality`: our Glow against PyTorch normflows' Glow, quality per wall clock.

Run `tfp-glow bench --quality --help` (or `python -m tfp_glow.bench --quality --help`).

Both Glows (L levels, K steps, `hidden` channels, affine sigmoid couplings, LU 1x1 convs) train
on the same offline images (`digits28`: uint8 28x28x1, 1293 train / 360 test; `photos32`:
uint8 32x32x3, 6000 train / 1000 test) with the same batch size, Adam learning rate, linear
warmup, global-norm clipping and seed, then are measured alike:

- **budgets**: `--budget 300,600,1800` (wall-clock seconds) or `--step-budget 500,1000,2000`
  (optimizer steps, for equal-step curves). Each run trains once, to the largest, and its
  **test bits/dim** is measured at every budget with the clock stopped, with one fixed
  dequantization noise pattern (`np.random.default_rng(1234).uniform(size=(H, W, C))`, ours'
  `FlowModel.eval_noise`) broadcast over the test images;
- **seeds**: `--seeds 3` repeats every run with seeds `--seed`, `--seed + 1`, ...; the table gives
  the mean, the sample standard deviation and each label's difference to normflows' mean, so a
  claim never rests on one lucky run. Within a seed the runs alternate, so drift of the machine
  reaches all of them alike;
- **variants** of our side (`--ours NAME:key=value,...`, repeatable; `quality_variants`) for an
  ablation against the peer in one run;
- **img/s**: training images per second of training wall time. Ours is timed from the call of
  `model.fit` (so the tracing of its first step counts) to the end of the last step; the
  PyTorch peer from its first step to its last. ActNorm's data-dependent initialisation runs
  before the clock on both sides and is reported separately (`init s`); so is the first step;
- **steps**, **non-finite steps** skipped (a step whose loss or gradient is not finite never
  reaches the weights) and the **steps the clip cut** (pre-clip global norm above `--clip-norm`);
- **finite samples**: the fraction of 64 samples at temperature 1.0 and 0.7 with every value
  finite;
- a **curve** `(elapsed s, step, mean train bits/dim over the batches since the previous
  point, largest gradient norm since then)` every `--curve-every` steps, drawn with the test
  points against steps and against seconds as `bits_per_dim_curves.png`.

Each run is its own subprocess (`python -m tfp_glow.bench --quality --child ours|normflows`,
printing one `QUALITY_JSON` line), one after the other, so thread pools and memory do not
interfere. Results go to `--out` (default `bench_quality/`): `results.json` (every run, and the
summary per budget) and the PNG.

This module is the parent: it runs the children and prints the report. The options are
`quality_config`, what a child runs is `quality_sides`, the table and plot `quality_report`.

The PyTorch side needs `torch` and `normflows` (`pip install "tfp_glow[bench]"`); without them
it is reported as unavailable and ours still runs. `import tfp_glow` never imports torch.
"""
import json
import os
import resource
import subprocess
import sys
import time

from tfp_glow.bench import quality_report, quality_sides
from tfp_glow.bench.quality_config import JSON_TAG, PROG, build_parser, child_argv, config_from_args, run_labels


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


def run_side(side, cfg, timeout=None, seed=None, variant=None):
    """Run one side (ours: one `variant`) with `seed` in a fresh subprocess; returns its results
    dict (status ok/unavailable/failed)."""
    if side == "normflows":
        msg = quality_sides.peer_unavailable()
        if msg:
            return {"status": "unavailable", "message": msg}
    if timeout is None:  # generous: a step takes well under 5 s at the bench's sizes
        timeout = (cfg["budget"] * 1.5 if cfg["budget"] else cfg["step_budgets"][-1] * 5.0) + 900
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    cpu0 = _cpu_snapshot()
    t = time.perf_counter()
    try:
        out = subprocess.run(child_argv(side, cfg, seed=seed, variant=variant), capture_output=True, text=True,
                             timeout=timeout, env=env)
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


def _write_json(cfg, runs):
    """`results.json` in `cfg["out"]`: the configuration, every run so far, the summary; its path."""
    os.makedirs(cfg["out"], exist_ok=True)
    path = os.path.join(cfg["out"], "results.json")
    with open(path + ".tmp", "w") as f:
        json.dump({"config": cfg, "runs": runs, "summary": quality_report.summarize(runs, cfg),
                   "cpu_count": os.cpu_count(), "load_average_end": os.getloadavg()}, f, indent=1)
    os.replace(path + ".tmp", path)
    return path


def run(cfg, stream=None):
    """Run every label (our variants, the peer) once per seed, alternating within a seed so
    drift of the machine reaches all of them alike; print the tables; write the JSON and PNG.

    Returns:
      `{label: [results dict per seed]}`.
    """
    say = lambda *a: print(*a, file=stream or sys.stdout, flush=True)  # noqa: E731
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    say(f"{PROG}: {quality_report.describe(cfg)}")
    say(f"  {os.cpu_count()} CPU cores, load average {load} at start; each run in its own subprocess")
    labels = run_labels(cfg)
    runs = {label: [] for label in labels}
    for seed in cfg["seeds"]:
        for label in labels:
            side = "normflows" if label == "normflows" else "ours"
            say(f"  running {label}, seed {seed} ...")
            r = run_side(side, cfg, seed=seed, variant=None if side == "normflows" else label)
            runs[label].append(r)
            _write_json(cfg, runs)  # after every run, so a long bench that dies keeps what it measured
            if r.get("status") == "ok":
                say(f"  {label}: {r['steps']} steps in {r['train_s']:.0f} s, test bits/dim {r['test_bpd']:.3f}")
            else:
                say(f"  {label}: {r['status']}: {r.get('message', '')}")
    say("")
    say(quality_report.format_table(runs, cfg))
    os.makedirs(cfg["out"], exist_ok=True)
    png = quality_report.plot_curves(runs, cfg, os.path.join(cfg["out"], "bits_per_dim_curves.png"))
    path = _write_json(cfg, runs)
    say(f"\n  wrote {path}" + (f" and {png}" if png else ""))
    return runs


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
        res = quality_sides.run_child(args.child, cfg)
        print(JSON_TAG + json.dumps(res), flush=True)
        return 0
    runs = run(cfg)
    failed = [label for label, rs in runs.items() if any(r.get("status") == "failed" for r in rs)]
    return 1 if failed else 0

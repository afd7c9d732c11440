"""`tfp-glow bench --scaling-table`: our model alone over depth x image size, +- recomputation.

Runs our model for K in {4, 8, 16, 32} x image size in {28, 32, 64} (choose with
`--table-steps`/`--table-sizes`) with and without recomputation (`--table-recompute`), one
fresh subprocess per cell (`python -m tfp_glow.bench --_cell ...`, printing one `CELL_JSON`
line), and stores every finished cell in a JSON file (`--table-out`), so an interrupted table
resumes where it stopped.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from tfp_glow.bench import speed
from tfp_glow.bench.config import RECOMPUTE_CHOICES, BenchError, check_config, config_argv, int_list
from tfp_glow.bench.rss import proc_status, reset_hwm


def scaling_table(args):
    """Measure every missing cell (each in a subprocess), save it, then print the whole table."""
    rec_modes = [r for r in args.table_recompute.split(",") if r]
    for r in rec_modes:
        if r not in RECOMPUTE_CHOICES:
            raise BenchError(f"--table-recompute: unknown mode {r!r}; choose from {', '.join(RECOMPUTE_CHOICES)}.")
    steps = int_list(args.table_steps, "--table-steps")
    sizes = int_list(args.table_sizes, "--table-sizes")
    path = args.table_out
    done = {}
    if os.path.exists(path):
        with open(path) as f:
            done = json.load(f)
    supported = speed.recompute_supported()
    print(f"Scaling table (ours only): L={args.levels}, hidden={args.hidden}, batch {args.batch}, "
          f"{args.iters} timed steps per cell, XLA {'off' if args.no_xla else args.xla}; results in {path} (resumable)",
          flush=True)
    for k in steps:
        for s in sizes:
            for r in rec_modes:
                key = f"K={k},size={s},recompute={r}"
                if key in done and not args.table_redo:
                    continue
                if r != "none" and not supported:
                    done[key] = {"status": "unsupported: our FlowModel has no recompute argument yet"}
                else:
                    done[key] = _table_cell(args, k, s, r)
                with open(path, "w") as f:
                    json.dump(done, f, indent=1, sort_keys=True)
                print(f"  {key}: {_cell_text(done[key])}", flush=True)
    print()
    head = f"{'K':>3s} {'size':>5s} " + "".join(f"{'img/s rec=' + r:>16s}{'peak MB':>10s}{'1st s':>7s}"
                                                  for r in rec_modes)
    print(head)
    print("-" * len(head))
    for k in steps:
        for s in sizes:
            line = f"{k:>3d} {s:>5d} "
            for r in rec_modes:
                c = done.get(f"K={k},size={s},recompute={r}", {})
                if c.get("status") == "ok":
                    line += f"{c['img_s']:>16.1f}{c['peak_bytes'] / 2**20:>10.0f}{c['first_step_s']:>7.0f}"
                else:
                    line += f"{c.get('status', 'not run')[:31]:>33s}"
            print(line)
    print("  peak MB: TF allocator peak during a train step above the memory held before it (activations and "
          "temporaries); the JSON file also holds rss_bytes, the peak RSS growth from the first step on "
          "(includes XLA compilation). 1st s: first train step (trace + compile).")


def _cell_text(c):
    if c.get("status") != "ok":
        return c.get("status")
    return (f"{c['img_s']:.1f} img/s, peak {c['peak_bytes'] / 2**20:.0f} MB, RSS {c['rss_bytes'] / 2**20:.0f} MB, "
            f"first step {c['first_step_s']:.0f} s")


def _table_cell(args, k, s, r):
    ns = argparse.Namespace(**vars(args))
    ns.steps, ns.image_size, ns.recompute = k, s, r
    try:
        check_config(ns, ("ours",))
    except BenchError as e:
        return {"status": f"skipped: {e}"}
    cmd = [sys.executable, "-m", "tfp_glow.bench", "--_cell", *config_argv(ns)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.cell_timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout after {args.cell_timeout} s"}
    for line in out.stdout.splitlines():
        if line.startswith("CELL_JSON "):
            return json.loads(line[10:])
    tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
    return {"status": f"failed: {tail[:200]}"}


def cell_child(args):
    """One cell, in this (child) process: print its `CELL_JSON` line."""
    model = speed.Ours(args, speed.make_images(args))
    hwm = reset_hwm()
    rss0 = proc_status()[0] if hwm else 0
    t = time.perf_counter()
    speed.sync(model.train())
    first = time.perf_counter() - t
    for _ in range(args.warmup):
        speed.sync(model.train())
    times, peaks = [], []
    for _ in range(args.iters):
        dt, peak = speed.timed(model.train, speed.memory_stats_available())
        times.append(dt)
        peaks.append(peak or 0)
    rss = proc_status()[1] - rss0 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("CELL_JSON " + json.dumps({"status": "ok", "img_s": args.batch / statistics.median(times),
                                     "peak_bytes": max(peaks), "rss_bytes": rss, "first_step_s": first,
                                     "params": model.params}), flush=True)

"""`tfp-glow bench --rss`: peak resident set growth of a model's training, in a fresh process.

TF's allocator peak (`speed.timed`) sees the activations of one step but not tracing and XLA
compilation; the resident set does. Each model runs in its own subprocess
(`python -m tfp_glow.bench --_rss-child ours|tfp ...`, printing one `RSS_JSON` line), so the
other model's memory is not in the figure. The scaling table's cells use `reset_hwm` and
`proc_status` too.
"""
import json
import resource
import subprocess
import sys

from tfp_glow.bench import speed
from tfp_glow.bench.config import config_argv


def rss_subprocess(args, which):
    """Peak RSS growth (bytes) of a fresh process running `--iters` train steps of one model."""
    cmd = [sys.executable, "-m", "tfp_glow.bench", "--_rss-child", which, *config_argv(args)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.cell_timeout)
    for line in out.stdout.splitlines():
        if line.startswith("RSS_JSON "):
            return json.loads(line[9:])
    raise RuntimeError(f"RSS measurement of {which} failed:\n{out.stderr[-2000:]}")


def proc_status():
    """`(VmRSS, VmHWM)` of this process in bytes from `/proc/self/status` (Linux), else None."""
    try:
        with open("/proc/self/status") as f:
            vals = dict(line.split(":", 1) for line in f if line.startswith(("VmRSS", "VmHWM")))
        return int(vals["VmRSS"].split()[0]) * 1024, int(vals["VmHWM"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def reset_hwm():
    """Reset the peak-RSS counter (`echo 5 > /proc/self/clear_refs`); True if it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        st = proc_status()
        return st is not None and st[1] <= st[0] + (1 << 20)
    except OSError:
        return False


def rss_child(args, which):
    """Peak RSS growth of the first train step (trace + compile + run) and of the later ones.

    After building and initialising the model, the kernel's peak-RSS counter is reset
    (`/proc/self/clear_refs`), so each figure is `VmHWM - VmRSS` over its own phase. Without
    that counter, `ru_maxrss` growth over the whole run is reported for both phases.
    """
    model = speed.MODELS[which](args, speed.make_images(args))
    out = {}
    for phase, n in (("first", 1), ("steady", max(1, args.iters))):
        if reset_hwm():
            rss0 = proc_status()[0]
            for _ in range(n):
                speed.sync(model.train())
            out[phase] = proc_status()[1] - rss0
            out["source"] = "VmHWM"
        else:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            for _ in range(n):
                speed.sync(model.train())
            out[phase] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
            out["source"] = "ru_maxrss"
    print("RSS_JSON " + json.dumps(out), flush=True)

"""`tfp-glow bench --profile DIR`: where a train step spends its time, by op, from a TF trace."""
import collections
import glob
import os
import re
import time

import tensorflow as tf

try:
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
except ImportError:  # pragma: no cover - other TF layouts
    from tsl.profiler.protobuf import xplane_pb2

from tfp_glow.bench import speed


_WRAPPERS = ("ExecutorState::", "ThunkExecutor::", "CpuExecutable::", "BlockUntilReady", "SlinkyThreadPool::",
             "ThreadpoolListener::", "ExecutorDoneCallback", "Iterator::", "PrefetchProduce", "PrefetchConsume",
             "IteratorGetNextOp", "MakeIterator", "optional:", "EagerExecute", "KernelAndDeviceFunc")


def profile_top_ops(fn, steps, logdir, top=12):
    """Trace `steps` calls of `fn` with the TF profiler; returns `(rows, seconds)`.

    `rows` are `(op, milliseconds, share)` summed over the compute threads' events of the trace
    (`tf_Compute*` executor threads and `tf_numa*` Eigen threads, where XLA's CPU thunks run),
    grouped by TF op type (the part after `:` of a TF op event) or by XLA HLO op (`dot.152` ->
    `dot`); executor and thread-pool wrapper events are left out. Sums over threads can exceed
    wall time (two cores work in parallel).
    """
    os.makedirs(logdir, exist_ok=True)
    before = set(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))
    tf.profiler.experimental.start(logdir)
    t = time.perf_counter()
    for _ in range(steps):
        speed.sync(fn())
    seconds = time.perf_counter() - t
    tf.profiler.experimental.stop()
    new = sorted(set(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)) - before)
    if not new:
        return [], seconds
    space = xplane_pb2.XSpace()
    with open(new[-1], "rb") as f:
        space.ParseFromString(f.read())
    total = collections.Counter()
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith(("tf_Compute", "tf_numa")):
                continue
            for ev in line.events:
                name = names.get(ev.metadata_id, "?")
                if name.startswith(_WRAPPERS):
                    continue
                key = name.rsplit(":", 1)[-1] if ":" in name else re.sub(r"\.\d+$", "", name)
                total[key] += ev.duration_ps / 1e9
    grand = sum(total.values()) or 1.0
    return [(k, v, v / grand) for k, v in total.most_common(top)], seconds


def print_profiles(args, which):
    """Profile `--iters` (at most 3) train steps of each model in a fresh build and print the top ops."""
    x = speed.make_images(args)
    for key in which:
        model = speed.MODELS[key](args, x)
        for _ in range(2):
            speed.sync(model.train())
        rows, seconds = profile_top_ops(model.train, min(3, args.iters), os.path.join(args.profile, key))
        n = min(3, args.iters)
        print(f"\nprofile of {key}: {n} train steps, {seconds / n:.2f} s per step; top ops by summed thread time "
              f"(trace in {os.path.join(args.profile, key)})")
        for op, ms, share in rows:
            print(f"  {op[:60]:60s}{ms:10.0f} ms {100 * share:5.1f}%")

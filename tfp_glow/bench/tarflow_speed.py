"""`tfp-glow bench --tarflow-reference PATH`: our TarFlow against apple/ml-tarflow's `Model`, same
configuration and batch, in one process.

What is measured, after warm-up, alternating one train step of ours with one of the reference's
so that both see the same machine load:

- **train step, images/s**: ours is `FlowModel`'s compiled Keras train function (what `fit`
  runs: dequantization noise, the density pass, bits/dim loss, gradients, Adam); the
  reference's is `Model.forward`, `get_loss`, `backward` and an `AdamW` step, as its
  `train.py` does on CPU (float32, no `torch.compile`). Figure: `batch / median step time`.
- **sampling 64 images, s**: ours `FlowModel.sample(64)` (a compiled `tf.while_loop` over the
  tokens with a key/value cache); the reference's `Model.reverse` under `torch.no_grad()`
  (its own key/value cache), on the same latent shape.

Needs `torch` (`pip install "tfp_glow[bench]"`) and the reference's `transformer_flow.py`
(not shipped here), whose path is the option's value, e.g.
`git --git-dir=<clone>/.git show HEAD:transformer_flow.py > /tmp/transformer_flow.py`.

References:
  Zhai et al., "Normalizing Flows are Capable Generative Models", 2024 (apple/ml-tarflow).
"""
import argparse
import importlib.util
import json
import os
import statistics
import sys

import keras
import numpy as np
import tensorflow as tf

# Triton (in CUDA builds of torch, loaded by torch's optimizers through torch._dynamo) brings an
# LLVM that crashes beside TensorFlow's XLA in one process; the CPU reference does not use it.
sys.modules.setdefault("triton", None)
import torch  # noqa: E402

from tfp_glow.bench.speed import sync, timed  # noqa: E402
from tfp_glow.models import FlowConfig, count_parameters  # noqa: E402
from tfp_glow.training import FlowModel  # noqa: E402


def build_parser(prog="tfp-glow bench --tarflow-reference PATH"):
    p = argparse.ArgumentParser(prog=prog, description="Our TarFlow against apple/ml-tarflow's Model on CPU: "
                                "train-step images/s (alternating) and the time to sample 64 images.")
    p.add_argument("--tarflow-reference", required=True, metavar="PATH",
                   help="the reference's transformer_flow.py (apple/ml-tarflow)")
    p.add_argument("--image-size", type=int, default=28, help="square image side (default 28)")
    p.add_argument("--channels", type=int, default=1, help="image channels (default 1)")
    p.add_argument("--patch-size", type=int, default=4, help="patch side p (default 4)")
    p.add_argument("--width", type=int, default=128, help="transformer width (default 128; 64 per head)")
    p.add_argument("--blocks", type=int, default=4, help="autoregressive blocks (default 4)")
    p.add_argument("--layers-per-block", type=int, default=4, help="transformer layers per block (default 4)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--iters", type=int, default=10, help="timed train steps per model (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps after the first (default 2)")
    p.add_argument("--samples", type=int, default=64, help="images per sampling call (default 64)")
    p.add_argument("--no-xla", action="store_true", help="our train step without XLA")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON")
    return p


def load_reference(path):
    if not os.path.isfile(path):
        raise SystemExit(f"tfp-glow bench: error: the reference file {path!r} does not exist.")  # exit code 1
    spec = importlib.util.spec_from_file_location("transformer_flow", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Ours:
    def __init__(self, args, x):
        shape = (args.image_size, args.image_size, args.channels)
        kwargs = dict(patch_size=args.patch_size, width=args.width, blocks=args.blocks,
                      layers_per_block=args.layers_per_block)
        self.model = FlowModel(FlowConfig("tarflow", shape, kwargs), n_bits=8)
        self.model.compile(keras.optimizers.Adam(1e-4), jit_compile=not args.no_xla)
        self.model.make_train_function()
        self.iterator = iter(tf.data.Dataset.from_tensors(x).repeat())
        self.params = count_parameters(self.model.distribution)
        self._n = args.samples

    def train(self):
        return sync(self.model.train_function(self.iterator))

    def sample(self):
        return sync(self.model.sample(self._n, 1.0, seed=0))


class Reference:
    def __init__(self, args, x, module):
        self.model = module.Model(args.channels, args.image_size, args.patch_size, args.width, args.blocks,
                                  args.layers_per_block)
        self.opt = torch.optim.AdamW(self.model.parameters(), betas=(0.9, 0.95), lr=1e-4, weight_decay=1e-4)
        # the reference trains on [-1, 1] with dequantization noise (its train.py)
        self.x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).float() / 127.5 - 1.0
        self.params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        self.latent = (args.samples, self.model.num_patches, args.channels * args.patch_size ** 2)

    def train(self):
        x = self.x + torch.rand_like(self.x) / 127.5
        z, _, logdets = self.model(x)
        loss = self.model.get_loss(z, logdets)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.item()

    def sample(self):
        with torch.no_grad():
            return self.model.reverse(torch.randn(self.latent))


def _timed(fn):
    return timed(fn, False)[0]


def measure(args):
    """Both models' first step, alternating train steps and sampling times; a results dict."""
    x = np.random.default_rng(0).integers(0, 256, (args.batch, args.image_size, args.image_size, args.channels)
                                          ).astype(np.uint8)
    torch.manual_seed(0)
    models = {"ours": Ours(args, x), "reference": Reference(args, x, load_reference(args.tarflow_reference))}
    res = {k: {"params": m.params, "first_step_s": _timed(m.train)} for k, m in models.items()}
    for m in models.values():
        for _ in range(args.warmup):
            m.train()
    times = {k: [] for k in models}
    for _ in range(args.iters):
        for k, m in models.items():
            times[k].append(_timed(m.train))
    for k in models:
        res[k]["train_img_s"] = args.batch / statistics.median(times[k])
        res[k]["train_img_s_range"] = [args.batch / max(times[k]), args.batch / min(times[k])]
        res[k]["first_sample_s"] = _timed(models[k].sample)
        res[k]["sample_s"] = statistics.median(_timed(models[k].sample) for _ in range(3))
    return res


def report(args, res):
    print(f"TarFlow {args.image_size}x{args.image_size}x{args.channels}, patch {args.patch_size}, width "
          f"{args.width}, {args.blocks} blocks x {args.layers_per_block} layers, batch {args.batch}; "
          f"{len(os.sched_getaffinity(0))} CPU cores, TensorFlow {tf.__version__}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads)")
    print(f"{'':12}{'params':>12}{'first step s':>14}{'train img/s':>13}{'(min-max)':>16}"
          f"{f'sample {args.samples} s':>14}")
    for k, r in res.items():
        lo, hi = r["train_img_s_range"]
        print(f"{k:12}{r['params']:>12,}{r['first_step_s']:>14.1f}{r['train_img_s']:>13.1f}{f'{lo:.0f}-{hi:.0f}':>16}"
              f"{r['sample_s']:>14.2f}")
    o, ref = res["ours"], res["reference"]
    print(f"ours / reference: train {o['train_img_s'] / ref['train_img_s']:.2f}x, "
          f"sampling {ref['sample_s'] / o['sample_s']:.2f}x as fast")


def main(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.width % 64:
        parser.error(f"--width must be a multiple of 64: the reference's Model has 64 channels per head; "
                     f"received {args.width}.")
    if args.image_size % args.patch_size:
        parser.error(f"--patch-size {args.patch_size} must divide --image-size {args.image_size}.")
    res = measure(args)
    report(args, res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": res}, f, indent=1)
    return 0

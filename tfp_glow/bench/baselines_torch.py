"""PyTorch peer for the quality bench: normflows' Glow, trained for a wall-clock budget.

Opt-in: this module imports `torch` and `normflows` at import time, and nothing in
`tfp_glow` imports it except the normflows child process of `tfp_glow.bench.quality`, when asked.
Install them with `pip install "tfp_glow[bench]"` (or `pip install torch normflows`; PyTorch
from PyPI brings several GB of CUDA libraries, the CPU wheel is
`pip install torch --index-url https://download.pytorch.org/whl/cpu`).

How normflows builds a Glow (its `examples/glow_colab.ipynb`, reproduced by `build_glow`):
`nf.MultiscaleFlow(q0, flows, merges)` with, for `i = 0 .. L-1` (`i = 0` is the *coarsest*
level, the top of the multi-scale hierarchy):

- `flows[i] = [GlowBlock(C * 2**(L+1-i), hidden), ...] (K of them) + [Squeeze()]`;
- `merges[i-1] = Merge()` for `i > 0`;
- `q0[i]`: the base of the latent factored out at level `i`, shape
  `(C 2^(L+1), H/2^L, W/2^L)` at the top (`i = 0`) and `(C 2^(L-i), H/2^(L-i), W/2^(L-i))`
  below it. We use `GlowBase` (a diagonal Gaussian with a learned mean and log-scale per
  channel, shared over positions, each written `a * exp(3 b)`), not class conditional.

On the density pass (`log_prob`, data -> latent) level `L-1` runs first: `Squeeze.inverse`
(the pixel squeeze `[C, H, W] -> [4C, H/2, W/2]`), the K `GlowBlock`s in reverse order, each
`ActNorm -> Invertible1x1Conv (LU) -> AffineCouplingBlock`, then `Merge.inverse` splits the
channels in half: the first half goes on to the next (coarser) level, the second half is
scored by `q0[i]`. In the coupling (`split_mode="channel"`, `scale_map="sigmoid"`) the first
half `z1` conditions: `param = ConvNet2d(z1)` (`conv3x3 -> relu -> conv1x1 -> relu ->
zero-init conv3x3`), `shift = param[:, 0::2]`, `s = sigmoid(param[:, 1::2] + 2)` and
`z2 <- (z2 - shift) * s` with log-det `sum log s`: the density pass contracts by `s in (0, 1)`
and only sampling divides by `s`.

Data handling matches ours (`tfp_glow.training.FlowModel`, `n_bits=8`): uint8 channels-last
images become NCHW `x = ((x_uint8 - 128) + u) / 256` (that is `(x_uint8 + u) / 256 - 0.5`),
`u ~ U[0, 1)` fresh every step, clipped below 1 as `tfp_glow.data.dequantize` does; the loss
is the mean bits/dim `(-log p(x) + D log 256) / (D ln 2)`; test bits/dim use one fixed noise
pattern `np.random.default_rng(eval_seed).uniform(size=(H, W, C))` broadcast to every image,
which is exactly `FlowModel.eval_noise()`.
"""
import math
import os
import sys
import time
import warnings

import numpy as np

# Triton (in CUDA builds of torch, loaded by torch's optimizers through torch._dynamo) brings an
# LLVM that segfaults beside TensorFlow's XLA in one process (the quality bench's child imports
# both); the CPU peer does not use it.
sys.modules.setdefault("triton", None)
import normflows as nf  # noqa: E402
import torch  # noqa: E402

_U_MAX = 1.0 - 2.0 ** -17  # as tfp_glow.data.dequantize: u never reaches the next bin


def build_glow(image_shape, levels, steps, hidden_channels):
    """normflows' Glow (`nf.MultiscaleFlow`) for channels-last `image_shape = [H, W, C]`.

    `GlowBlock(split_mode="channel", scale=True, scale_map="sigmoid")`, LU 1x1 convolutions,
    `GlowBase` bases, built as normflows' Glow example does (see the module docstring).

    Args:
      image_shape: `[H, W, C]`, Python ints, H and W divisible by `2**levels`.
      levels: L, number of squeezes.
      steps: K, `GlowBlock`s per level.
      hidden_channels: width of the coupling networks.

    Returns:
      An `nf.MultiscaleFlow` over NCHW images `[N, C, H, W]` (`class_cond=False`).
    """
    h, w, c = (int(d) for d in image_shape)
    f = 2 ** levels
    if h % f or w % f:
        raise ValueError(f"normflows' Glow with {levels} levels needs H and W divisible by {f}; "
                         f"received image shape {[h, w, c]}.")
    q0, merges, flows = [], [], []
    for i in range(levels):
        with warnings.catch_warnings():  # normflows' LU initialisation calls the deprecated torch.lu
            warnings.filterwarnings("ignore", message=".*torch.lu is deprecated.*")
            level = [nf.flows.GlowBlock(c * 2 ** (levels + 1 - i), hidden_channels, split_mode="channel",
                                        scale=True, scale_map="sigmoid") for _ in range(steps)]
        level.append(nf.flows.Squeeze())
        flows.append(level)
        if i > 0:
            merges.append(nf.flows.Merge())
            latent = (c * 2 ** (levels - i), h // 2 ** (levels - i), w // 2 ** (levels - i))
        else:
            latent = (c * 2 ** (levels + 1), h // 2 ** levels, w // 2 ** levels)
        q0.append(nf.distributions.GlowBase(latent))
    return nf.MultiscaleFlow(q0, flows, merges, class_cond=False)


def count_parameters(model):
    """Stored trainable scalars (`sum numel`). normflows' LU 1x1 convolution stores full `C x C`
    `L` and `U` matrices and masks them, so `C^2 + C` of each conv's scalars are unused."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def to_nchw(x_uint8):
    """uint8 `[N, H, W, C]` (numpy) -> float32 torch `[N, C, H, W]` of the integer levels."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x_uint8).transpose(0, 3, 1, 2))).float()


def dequantize(x_levels, u):
    """`(x + u) / 256 - 0.5`, computed as `((x - 128) + u) / 256` with `u` clipped below 1."""
    return ((x_levels - 128.0) + u.clamp(0.0, _U_MAX)) / 256.0


def bits_per_dim(model, x):
    """Per-example bits/dim `(-log p(x) + D log 256) / (D ln 2)` of dequantized NCHW `x`."""
    d = x[0].numel()
    log_p = model.log_prob(x, None)
    return (-log_p + d * math.log(256.0)) / (d * math.log(2.0))


def eval_noise(image_shape, eval_seed=1234):
    """Our fixed evaluation noise (`FlowModel.eval_noise`) as NCHW `[1, C, H, W]`."""
    u = np.random.default_rng(eval_seed).uniform(size=tuple(image_shape)).astype(np.float32)
    return torch.from_numpy(u.transpose(2, 0, 1)[None].copy())


def _batches(n, batch_size, generator):
    """Shuffled index batches forever, drop-remainder, spanning epoch boundaries like
    `make_dataset(..., shuffle=True, repeat=True, drop_remainder=True)`."""
    buf = torch.empty(0, dtype=torch.long)
    while True:
        while len(buf) < batch_size:
            buf = torch.cat([buf, torch.randperm(n, generator=generator)])
        yield buf[:batch_size]
        buf = buf[batch_size:]


def _warmup_lr(lr, warmup_steps, step):
    """openai/glow's linear warmup: `lr * min(1, (step + 1) / warmup_steps)` (0-based step)."""
    if not warmup_steps:
        return lr
    return lr * min(1.0, (step + 1) / float(warmup_steps))


def evaluate_bpd(model, test_x, image_shape, eval_seed=1234, batch_size=256):
    """Mean test bits/dim with the fixed noise, eval mode, no gradients (NaN if any is not finite)."""
    model.eval()
    u = eval_noise(image_shape, eval_seed)
    total, n = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(test_x), batch_size):
            xb = to_nchw(test_x[start:start + batch_size])
            bpd = bits_per_dim(model, dequantize(xb, u.expand_as(xb)))
            total += float(bpd.double().sum())
            n += len(xb)
    return total / n


def finite_sample_fraction(model, n=64, temperature=1.0, seed=0):
    """Fraction of `n` samples at `temperature` whose values are all finite."""
    model.eval()
    torch.manual_seed(seed)
    with torch.no_grad():
        x, _ = model.sample(n, temperature=temperature)
    return float(torch.isfinite(x.reshape(len(x), -1)).all(dim=1).float().mean())


def _initialize_actnorm(model, first, generator):
    """ActNorm's data-dependent init as in normflows' examples: one density pass on a batch."""
    with torch.no_grad():
        model.log_prob(dequantize(first, torch.rand(first.shape, generator=generator)), None)


def _step(model, optimizer, params, x, max_norm):
    """One Adam update on dequantized `x` unless its loss or gradient is not finite.

    Returns `(applied, loss, global gradient norm before clipping)`; with `max_norm=inf`
    nothing is scaled.
    """
    optimizer.zero_grad(set_to_none=True)
    loss = bits_per_dim(model, x).mean()
    loss_value = float(loss.detach())
    if not math.isfinite(loss_value):
        return False, loss_value, float("nan")
    loss.backward()
    norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    if not math.isfinite(norm):
        optimizer.zero_grad(set_to_none=True)
        return False, loss_value, norm
    optimizer.step()
    return True, loss_value, norm


class _RunLog:
    """The clock, the curve, the counters and the budget points of one training run.

    `record` after each step; `due()` yields once per budget point the step reached (its
    caller measures, then calls `measured`), and the time spent measuring is taken off the
    clock; `done` after the last point.
    """

    def __init__(self, points, curve_every):
        self.points, self.curve_every = points, int(curve_every)
        self.curve, self.at_budget, self._window = [], [], []
        self.step = self.nonfinite = self.clipped = 0
        self._window_max_norm = 0.0
        self.first_step_s = None
        self.t0 = time.perf_counter()
        self.elapsed = 0.0

    def record(self, applied, loss_value, norm, clipped):
        if applied:
            self._window.append(loss_value)
            self._window_max_norm = max(self._window_max_norm, norm)
            self.clipped += int(clipped)
        else:
            self.nonfinite += 1
        self.step += 1
        self.elapsed = time.perf_counter() - self.t0
        if self.first_step_s is None:
            self.first_step_s = self.elapsed
        if self.step == 1 or self.step % self.curve_every == 0 or self._reached():
            mean = float(np.mean(self._window)) if self._window else float("nan")
            self.curve.append([self.elapsed, self.step, mean, self._window_max_norm])
            self._window, self._window_max_norm = [], 0.0

    def _reached(self):
        if self.done:
            return False
        unit, value = self.points[len(self.at_budget)]
        return (self.elapsed if unit == "s" else self.step) >= value

    @property
    def done(self):
        return len(self.at_budget) == len(self.points)

    def due(self):
        while self._reached():  # a slow step may pass several points
            self._t_measure = time.perf_counter()
            yield self.points[len(self.at_budget)]

    def measured(self, test_bpd):
        unit, value = self.points[len(self.at_budget)]
        spent = time.perf_counter() - self._t_measure
        self.at_budget.append({"unit": unit, "budget": value, "elapsed_s": self.elapsed, "step": self.step,
                               "test_bpd": test_bpd, "measure_s": spent})
        self.t0 += spent


def train_for_budget(train_x, test_x, levels, steps, hidden_channels, batch_size=64, learning_rate=1e-3,
                     warmup_steps=0, clip_norm=None, seed=0, budget_s=600.0, curve_every=10, eval_seed=1234,
                     threads=None, budget_points=None):
    """Train normflows' Glow for `budget_s` seconds of wall clock (or to the last of
    `budget_points`), measuring test bits/dim at each point, then measure it.

    Adam (`learning_rate`, linear warmup over `warmup_steps`), global-norm gradient clipping at
    `clip_norm` (None: off), a step whose loss or gradient norm is not finite is skipped (no
    optimizer update) and counted. ActNorm's data-dependent initialisation runs as in normflows'
    examples: a first `log_prob` pass on the first training batch (before the clock starts).
    The clock then runs from the first training step to the end of the step during which the
    budget ran out.

    Args:
      train_x, test_x: uint8 `[N, H, W, C]` numpy arrays.
      levels, steps, hidden_channels: the Glow (see `build_glow`).
      batch_size, learning_rate, warmup_steps, clip_norm, seed: training.
      budget_s: wall-clock seconds of training (when `budget_points` is `None`).
      budget_points: `[(unit, value), ...]` as `tfp_glow.bench.quality_config.budget_points`
        gives them (`"s"` or `"step"`): test bits/dim is measured at each, with the clock
        stopped, and the last one ends the run.
      curve_every: record `(elapsed s, step, mean train bits/dim of the finite batches since the
        previous record, largest gradient norm since then)` every this many steps (and after
        step 1 and the last step).
      eval_seed: seed of the fixed test noise (ours: `FlowModel(eval_seed=1234)`).
      threads: torch intra-op threads (default `os.cpu_count()`).

    Returns:
      A JSON-ready dict: `test_bpd`, `at_budget` (one record per budget point), `clipped_steps`
      (steps whose gradient norm the clip cut), `img_per_s`, `img_per_s_after_first`, `steps`,
      `nonfinite_steps`, `first_step_s`, `train_s`, `init_s`, `eval_s`,
      `finite_samples` (`{"1.0": f, "0.7": f}`), `params`, `curve`, `final_train_bpd`.
    """
    torch.set_num_threads(int(threads or os.cpu_count()))
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    image_shape = tuple(int(d) for d in train_x.shape[1:])
    t_init = time.perf_counter()
    model = build_glow(image_shape, levels, steps, hidden_channels)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=learning_rate)
    x_levels = to_nchw(train_x)
    batches = _batches(len(x_levels), batch_size, gen)
    first_idx = next(batches)
    _initialize_actnorm(model, x_levels[first_idx], gen)
    init_s = time.perf_counter() - t_init

    model.train()
    max_norm = float(clip_norm) if clip_norm else float("inf")
    points = list(budget_points or [("s", float(budget_s))])
    log = _RunLog(points, curve_every)
    idx = first_idx
    while True:
        for group in optimizer.param_groups:
            group["lr"] = _warmup_lr(learning_rate, warmup_steps, log.step)
        xb = x_levels[idx]
        applied, loss_value, norm = _step(model, optimizer, params, dequantize(xb, torch.rand(xb.shape, generator=gen)),
                                          max_norm)
        log.record(applied, loss_value, norm, norm > max_norm)
        for _ in log.due():  # measure with the clock stopped
            test = evaluate_bpd(model, test_x, image_shape, eval_seed)
            model.train()
            log.measured(test)
        if log.done:
            break
        idx = next(batches)
    return _results(model, log, test_x, image_shape, eval_seed, seed, batch_size, init_s)


def _results(model, log, test_x, image_shape, eval_seed, seed, batch_size, init_s):
    """The JSON-ready results of a finished run (see `train_for_budget`)."""
    elapsed, step, at_budget, curve = log.elapsed, log.step, log.at_budget, log.curve
    first_step_s, nonfinite, clipped = log.first_step_s, log.nonfinite, log.clipped
    train_s = elapsed  # training time only: the measurements stopped the clock
    t_eval = time.perf_counter()
    test_bpd = at_budget[-1]["test_bpd"]
    finite = {f"{t:.1f}": finite_sample_fraction(model, 64, t, seed=0) for t in (1.0, 0.7)}
    eval_s = time.perf_counter() - t_eval
    after = train_s - first_step_s
    return {
        "status": "ok",
        "test_bpd": test_bpd,
        "at_budget": at_budget,
        "seed": seed,
        "img_per_s": step * batch_size / train_s,
        "img_per_s_after_first": (step - 1) * batch_size / after if step > 1 and after > 0 else None,
        "steps": step,
        "clipped_steps": clipped,
        "nonfinite_steps": nonfinite,
        "first_step_s": first_step_s,
        "train_s": train_s,
        "init_s": init_s,
        "eval_s": eval_s,
        "finite_samples": finite,
        "params": count_parameters(model),
        "curve": curve,
        "final_train_bpd": curve[-1][2] if curve else None,
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "normflows": getattr(nf, "__version__", "?")},
    }

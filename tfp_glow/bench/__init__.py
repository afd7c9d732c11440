"""Benchmarks: `tfp-glow bench`, also `python -m tfp_glow.bench`.

What it holds
-------------
Measurements that put our flows next to other implementations, and nothing that training,
sampling or serving a model needs:

- `cli`: `main`, re-exported here with `build_parser` (`options`; `--quality`'s is
  `quality_options`). These three are standard library only, so `--help` imports no
  TensorFlow; `main` then loads `run` (the speed comparison and the scaling table) or hands the
  rest of the command line to `quality.main`.
- `config`: option choices, the analytic FLOP and activation-memory counts, and the checks
  that reject a configuration that cannot run before anything is built.
- `speed`: our Glow against TFP's `tfb.Glow` with the same architecture, one step of each in
  turn: train step, log_prob and sampling images/s, first step, allocator peak. It also
  measures the matmul peak and the convolutions-alone floor. `report` prints its table,
  `rss` measures peak resident set growth in a fresh process (`--rss`), and `profile` traces
  a few train steps and lists the top ops (`--profile`).
- `scaling`: `--scaling-table`, our model alone over depth x image size, one subprocess per
  cell.
- `quality`: `--quality`, our Glow against PyTorch normflows' Glow for the same wall-clock
  budget. `quality` is the parent, `quality_config` the options, `quality_sides` what each
  child process runs and `quality_report` the table and plot.
- `baselines_tfp`: TFP's `tfb.Glow` and `tfb.RealNVP` rebuilt to match our models (with TFP's
  bundled `tf_keras`). `speed` and `examples/compare_tfp_digits.py` use it.
- `baselines_torch`: the PyTorch peer, normflows' Glow trained for a wall-clock budget.
- `tarflow_speed`: `--tarflow-reference PATH`, our TarFlow against apple/ml-tarflow's `Model`
  (train step and sampling, one process; imports torch); `tarflow_reference` writes the
  reference's `MetaBlock` outputs on fixed weights as the test fixture (torch only, no tfp_glow).

What it may import
------------------
It sits at the top of the package, beside the CLI: it may import anything in `tfp_glow`, and
no module of the library imports it (`tfp_glow.cli` imports it only when `tfp-glow bench`
runs), so `import tfp_glow` never loads it. Inside it, imports sit at the top of each module
and point one way (`cli` also imports most of them directly); no submodule imports this
`__init__`:

    cli -> options, quality_options -> config   (standard library only)
    cli -> quality -> quality_sides, quality_report -> quality_config -> quality_options
    cli -> run -> scaling -> rss -> speed -> baselines_tfp, config
    run -> profile -> speed;  run -> report -> config
    cli -> tarflow_speed -> speed (only for --tarflow-reference)

`torch` and `normflows` are imported by `baselines_torch`, which only
`quality_sides.run_normflows` imports, inside the normflows child process; `torch` also by
`tarflow_speed`, which `cli` imports only for `--tarflow-reference`. So neither
`import tfp_glow` nor `import tfp_glow.bench` loads torch, and without torch the peer is
reported as unavailable.

Every child process (`--_cell`, `--_rss-child`, `--quality --child SIDE`) runs
`python -m tfp_glow.bench` and enters through the same `main` as a user.
"""
import os

# For the child processes, which inherit the environment and so have these set before TensorFlow
# and Keras load (in this process nothing has loaded them yet when `--help` is answered).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from tfp_glow.bench.cli import build_parser, main  # noqa: E402

__all__ = ["build_parser", "main"]

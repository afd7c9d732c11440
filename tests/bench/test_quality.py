"""`tfp-glow bench --quality` (`tfp_glow.bench.quality`): our side on a tiny model, the table,
the missing-PyTorch message, option errors, and the subprocess plumbing without a subprocess.

Nothing here needs torch (CI has none); the PyTorch peer runs in `tfp-glow bench --quality`.
"""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from tfp_glow import bench
from tfp_glow.bench import quality, quality_config, quality_report, quality_sides


def _cfg(**kw):
    base = dict(data="digits28", budget=4.0, levels=2, steps=1, hidden=8, curve_every=5, which="ours")
    base.update(kw)
    return quality_config.resolve_config(**base)


def _ok(**kw):
    r = {"status": "ok", "test_bpd": 3.9123, "at_budget": [{"unit": "s", "budget": 4.0, "elapsed_s": 60.1, "step": 940,
                                                             "test_bpd": kw.get("test_bpd", 3.9123)}], "final_train_bpd": 3.95, "img_per_s": 101.25,
         "img_per_s_after_first": 110.0, "steps": 940, "nonfinite_steps": 2, "first_step_s": 5.5, "init_s": 1.0,
         "finite_samples": {"1.0": 0.5, "0.7": 1.0}, "params": 1234567, "others_cpu_cores": 0.0,
         "curve": [[5.5, 1, 8.2], [30.0, 470, 4.2], [60.1, 940, 3.95]], "train_s": 60.1}
    r.update(kw)
    return r


# ------------------------------------------------------------------------------- our side
def test_ours_child_trains_a_tiny_glow_for_the_budget_and_measures_it():
    cfg = _cfg()
    r = quality_sides.run_child("ours", cfg)
    assert r["status"] == "ok"
    assert math.isfinite(r["test_bpd"]) and 0 < r["test_bpd"] < 9.0
    assert r["steps"] > 0 and r["img_per_s"] > 0
    assert r["nonfinite_steps"] in (None, 0)  # None: a FlowModel that does not count them
    for t in ("1.0", "0.7"):
        assert 0.0 <= r["finite_samples"][t] <= 1.0
    # the clock ran at least the budget, and it included the first (tracing) step
    assert r["train_s"] >= cfg["budget"]
    curve = r["curve"]
    assert curve[0][1] == 1 and curve[-1][1] == r["steps"]
    assert curve[0][0] >= r["first_step_s"] > 0
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in zip(curve, curve[1:]))
    assert curve[-1][0] >= cfg["budget"]
    assert all(math.isfinite(c[2]) for c in curve)
    assert r["params"] > 0
    json.dumps(r)  # what the child prints must be JSON


# ----------------------------------------------------------------------------- the table
def test_table_shows_both_sides_and_formats_values():
    cfg = _cfg(which="ours,normflows")
    text = quality_report.format_table({"ours": [_ok()], "normflows": [_ok(test_bpd=float("nan"), nonfinite_steps=0,
                                                                           params=1390248)]}, cfg)
    lines = text.splitlines()
    assert "ours" in lines[0] and "normflows" in lines[0]
    row = next(l for l in lines if l.startswith("test bits/dim"))
    assert "3.912" in row and "nan" in row
    assert "1,234,567" in text and "1,390,248" in text
    fin = next(l for l in lines if l.startswith("finite samples, T=1.0"))
    assert fin.split()[-2:] == ["0.50", "0.50"]
    assert "GlowBase bases learn a mean and scale per channel" in text  # the note on the parameter counts


def test_table_marks_an_unavailable_side_and_a_busy_machine():
    cfg = _cfg(which="ours,normflows")
    msg = quality_sides.peer_missing_message("missing: torch")
    text = quality_report.format_table({"ours": [_ok(others_cpu_cores=1.2)],
                                        "normflows": [{"status": "unavailable", "message": msg}]}, cfg)
    row = next(l for l in text.splitlines() if l.startswith("test bits/dim"))
    assert row.split()[-2:] == ["3.912", "unavailable"]
    assert 'pip install "tfp_glow[bench]"' in text
    assert "other processes used the CPU while ours ran" in text


# ---------------------------------------------------------------------- a missing PyTorch
@pytest.fixture
def no_torch(monkeypatch):
    """Make `import torch` raise ImportError (and find_spec report it missing)."""
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "tfp_glow.bench.baselines_torch", raising=False)
    monkeypatch.delattr("tfp_glow.bench.baselines_torch", raising=False)


def test_missing_torch_is_reported_with_how_to_install(no_torch):
    with pytest.raises(ImportError):
        import torch  # noqa: F401  (the fixture works)
    r = quality_sides.run_child("normflows", _cfg(which="normflows"))
    assert r["status"] == "unavailable"
    for part in ('pip install "tfp_glow[bench]"', "pip install torch normflows", "several GB",
                 "--index-url https://download.pytorch.org/whl/cpu"):
        assert part in r["message"]
    msg = quality_sides.peer_unavailable()
    assert msg is not None and "missing: torch" in msg


def test_cli_without_torch_reports_the_peer_and_starts_no_subprocess(no_torch, monkeypatch, tmp_path, capsys):
    def boom(*a, **k):
        raise AssertionError("no subprocess should start for an unavailable peer")

    monkeypatch.setattr(subprocess, "run", boom)
    rc = bench.main(["--quality", "--which", "normflows", "--budget", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "unavailable" in out and 'pip install "tfp_glow[bench]"' in out
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["runs"]["normflows"][0]["status"] == "unavailable"
    assert saved["config"]["which"] == ["normflows"]


# ---------------------------------------------------------------------------- bad options
@pytest.mark.parametrize("kw, pattern", [
    (dict(data="mnist"), r"unknown --data 'mnist'; choose from digits28, photos32"),
    (dict(budget=0), r"--budget must be a number of seconds > 0 \(or several, comma-separated\); received 0"),
    (dict(budget="300,x"), r"--budget must be a number of seconds > 0 .*received '300,x'"),
    (dict(step_budget="100,-5"), r"--step-budget must be positive step counts"),
    (dict(step_budget="2.5"), r"--step-budget must be positive step counts"),
    (dict(seeds=0), r"--seeds must be a positive integer"),
    (dict(variants=["a:scale_min"]), r"--ours takes NAME:key=value.*'scale_min' in 'a:scale_min' is not key=value"),
    (dict(variants=["a:", "a:ema=0.9"]), r"--ours variants need distinct names; received \['a', 'a'\]"),
    (dict(variants=["normflows:"]), r"--ours variant name 'normflows' is the peer's name"),
    (dict(budget=-5), r"--budget must be a number of seconds > 0"),
    (dict(budget=float("nan")), r"--budget must be a number of seconds > 0"),
    (dict(levels=3), r"--levels 3 .* divisible by 8, but digits28 images are 28x28; use --levels 2"),
    (dict(which="ours,pytorch"), r"--which takes a comma-separated subset of ours,normflows"),
    (dict(hidden=0), r"--hidden must be a positive integer"),
    (dict(clip_norm=-1.0), r"--clip-norm must be a number > 0"),
])
def test_bad_options_raise_clear_value_errors(kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        _cfg(**kw)


@pytest.mark.parametrize("argv, text", [
    (["--data", "mnist"], "error: unknown --data 'mnist'"),
    (["--budget", "0"], "error: --budget must be a number of seconds > 0"),
    (["--budget", "-1"], "error: --budget must be a number of seconds > 0"),
])
def test_cli_bad_options_are_error_messages(argv, text, capsys):
    rc = bench.main(["--quality", *argv])
    err = capsys.readouterr().err
    assert rc == 2
    assert text in err and err.startswith("tfp-glow bench --quality: error:")


# ------------------------------------------------------------------ defaults and plumbing
def test_defaults_are_the_cli_recipe_and_options_override_them():
    from tfp_glow import recipes

    d, source = quality_config.recipe_defaults("digits28")
    r = recipes.recipe_for("image", (28, 28, 1), "glow", "digits28")
    assert (d["levels"], d["steps"], d["hidden"], d["batch_size"]) == (
        r.flow_kwargs["levels"], r.flow_kwargs["steps"], r.flow_kwargs["hidden_channels"], r.batch_size)
    assert (d["learning_rate"], d["warmup_steps"], d["clip_norm"]) == (r.learning_rate, r.warmup_steps, r.clip_norm)
    assert (d["levels"], quality_config.recipe_defaults("photos32")[0]["levels"]) == (2, 3)
    assert "recipes" in source
    args = quality_config.build_parser().parse_args(["--steps", "2", "--clip-norm", "none"])
    cfg = quality_config.config_from_args(args)
    assert cfg["steps"] == 2 and cfg["clip_norm"] is None and cfg["hidden"] == r.flow_kwargs["hidden_channels"]


def test_child_command_line_round_trips_the_config():
    cfg = _cfg(which="ours,normflows", clip_norm=2.5, warmup_steps=7, learning_rate=3e-4, seed=5)
    argv = quality_config.child_argv("normflows", cfg)
    assert argv[:6] == [sys.executable, "-m", "tfp_glow.bench", "--quality", "--child", "normflows"]
    args = quality_config.build_parser().parse_args(argv[4:])
    back = quality_config.config_from_args(args)
    assert args.child == "normflows" and back["which"] == ["normflows"]
    for k in ("data", "budget", "budgets", "step_budgets", "levels", "steps", "hidden", "batch_size",
              "learning_rate", "warmup_steps", "clip_norm", "seed", "curve_every", "torch_threads"):
        assert back[k] == cfg[k], k
    # several budgets, equal steps, a variant and a seed of a multi-seed run
    cfg = _cfg(step_budget="50,20", variants=["base:", "smin0:scale_min=0,epsilon=1e-8"], seeds=3)
    assert cfg["step_budgets"] == [20, 50] and cfg["budget"] is None and cfg["seeds"] == [0, 1, 2]
    argv = quality_config.child_argv("ours", cfg, seed=2, variant="smin0")
    back = quality_config.config_from_args(quality_config.build_parser().parse_args(argv[4:]))
    assert back["step_budgets"] == [20, 50] and back["seed"] == 2
    assert back["variants"] == {"smin0": {"scale_min": "0", "epsilon": "1e-8"}}
    assert quality_config.budget_points(back) == [("step", 20), ("step", 50)]
    back = quality_config.config_from_args(quality_config.build_parser().parse_args(
        quality_config.child_argv("ours", _cfg(budget="30,10,20"))[4:]))
    assert back["budgets"] == [10.0, 20.0, 30.0] and back["budget"] == 30.0


def test_run_writes_json_and_png_from_the_children(monkeypatch, tmp_path, capsys):
    cfg = _cfg(which="ours,normflows", out=str(tmp_path))
    tag = quality_config.JSON_TAG
    lines = {"ours": tag + json.dumps(_ok()), "normflows": "noise\n" + tag + json.dumps(_ok(test_bpd=3.5, params=99))}

    def fake_run(argv, **kw):
        side = argv[argv.index("--child") + 1]
        return subprocess.CompletedProcess(argv, 0, stdout=lines[side] + "\n", stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(quality_sides, "peer_unavailable", lambda: None)
    runs = quality.run(cfg)
    assert runs["normflows"][0]["test_bpd"] == 3.5 and runs["ours"][0]["steps"] == 940
    assert "3.500" in capsys.readouterr().out
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["runs"]["normflows"][0]["params"] == 99
    png = tmp_path / "bits_per_dim_curves.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_crashing_child_is_a_failed_side_with_its_last_words(monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: subprocess.CompletedProcess(
        argv, 1, stdout="", stderr="Traceback\nRuntimeError: out of memory\n"))
    r = quality.run_side("ours", _cfg())
    assert r["status"] == "failed" and "exit code 1" in r["message"] and "out of memory" in r["message"]


def test_importing_tfp_glow_and_the_bench_does_not_import_torch():
    # `import tfp_glow` does not load the bench at all; the bench, all of it, loads no torch
    code = ("import sys, tfp_glow; print('tfp_glow.bench' in sys.modules); "
            "import tfp_glow.bench, tfp_glow.bench.quality_sides, tfp_glow.bench.baselines_tfp; "
            "print('torch' in sys.modules, 'normflows' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split()[-3:] == ["False", "False", "False"], out.stderr[-500:]


# ------------------------------------------------------- budgets, seeds and variants (issue 18)
def test_ours_child_measures_test_bits_per_dim_at_every_step_budget():
    r = quality_sides.run_child("ours", _cfg(step_budget="3,6"))
    assert r["status"] == "ok" and r["steps"] == 6
    assert [(a["unit"], a["budget"], a["step"]) for a in r["at_budget"]] == [("step", 3, 3), ("step", 6, 6)]
    assert all(math.isfinite(a["test_bpd"]) for a in r["at_budget"])
    assert r["test_bpd"] == r["at_budget"][-1]["test_bpd"]
    assert r["at_budget"][1]["elapsed_s"] <= r["train_s"]


class _StubModel:
    metrics = []
    stop_training = False


def test_budget_callback_stops_the_clock_while_it_measures():
    slept = []

    def measure():
        import time
        time.sleep(0.2)
        slept.append(1)
        return 1.5

    cb = quality_sides.BudgetCallback([("step", 2), ("step", 4)], curve_every=100, measure=measure)
    cb.set_model(_StubModel())
    cb.on_train_begin()
    t_start = cb.t0
    for i in range(4):
        assert not cb.model.stop_training
        cb.on_train_batch_begin(i)
        cb.on_train_batch_end(i, {"bits_per_dim": 2.0})
    assert cb.model.stop_training and len(slept) == 2
    assert [a["step"] for a in cb.at_budget] == [2, 4] and [a["test_bpd"] for a in cb.at_budget] == [1.5, 1.5]
    assert cb.t0 - t_start >= 0.4  # both measurements were taken off the clock
    assert cb.train_s < 0.2  # four stub steps take far less than one measurement


def test_seeds_and_variants_run_in_turn_and_the_summary_is_their_mean_and_spread(monkeypatch, tmp_path, capsys):
    cfg = _cfg(which="ours,normflows", out=str(tmp_path), step_budget="10,20", seeds=3,
               variants=["base:", "smin0:scale_min=0"])
    order, values = [], {}

    def fake_run(argv, **kw):
        side = argv[argv.index("--child") + 1]
        seed = int(argv[argv.index("--seed") + 1])
        label = argv[argv.index("--ours") + 1].split(":")[0] if side == "ours" else side
        order.append((seed, label))
        recs = [{"unit": "step", "budget": b, "elapsed_s": b / 10, "step": b,
                 "test_bpd": 4.0 - b / 100 + 0.01 * seed + (0.5 if label == "normflows" else 0)} for b in (10, 20)]
        values.setdefault(label, []).append([r["test_bpd"] for r in recs])
        res = _ok(at_budget=recs, test_bpd=recs[-1]["test_bpd"], seed=seed)
        return subprocess.CompletedProcess(argv, 0, stdout=quality_config.JSON_TAG + json.dumps(res) + "\n", stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(quality_sides, "peer_unavailable", lambda: None)
    runs = quality.run(cfg)
    assert order == [(s, l) for s in (0, 1, 2) for l in ("base", "smin0", "normflows")]
    summary = quality_report.summarize(runs, cfg)
    for label in ("base", "smin0", "normflows"):
        v = np.array(values[label])
        for i in range(2):
            row = summary[label][i]
            assert row["n"] == 3 and row["mean"] == pytest.approx(v[:, i].mean())
            assert row["sd"] == pytest.approx(v[:, i].std(ddof=1))
            assert (row["min"], row["max"]) == (pytest.approx(v[:, i].min()), pytest.approx(v[:, i].max()))
    out = capsys.readouterr().out
    budget_row = next(l for l in out.splitlines() if l.startswith("step 20"))
    assert "3.810 ± 0.010 (-0.500)" in budget_row and "4.310 ± 0.010" in budget_row
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["summary"]["smin0"][1]["mean"] == pytest.approx(summary["smin0"][1]["mean"])
    assert (tmp_path / "bits_per_dim_curves.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("options, pattern", [
    ({"s_min": "0"}, r"unknown key 's_min'"),
    ({"scale_min": "1.0"}, r"scale_min must be a float in \[0, 1\); received '1.0'"),
    ({"optimizer": "sgd"}, r"optimizer must be adam, adamax or adamw"),
    ({"lr_schedule": "cosine"}, r"lr_schedule=cosine needs --step-budget"),
])
def test_variant_options_are_checked(options, pattern):
    from tfp_glow.bench import quality_variants
    with pytest.raises(ValueError, match=pattern):
        quality_variants.ours_settings(_cfg(), options)


def test_variant_options_reach_the_model_and_the_optimizer():
    import keras
    from tfp_glow import recipes
    from tfp_glow.bijectors import AffineCoupling, Split
    from tfp_glow.bijectors.networks import ChannelParameters
    cfg = _cfg(step_budget="300")
    model, note = quality_sides.build_ours(cfg, (28, 28, 1), {"scale_min": "0", "epsilon": "1e-8",
                                                             "optimizer": "adamax", "lr_schedule": "cosine"})
    couplings = [m for m in model.distribution.bijector.submodules if isinstance(m, AffineCoupling)]
    assert couplings and all(c.parameters["scale_min"] == 0.0 for c in couplings)
    assert isinstance(model.optimizer, keras.optimizers.Adamax) and model.optimizer.epsilon == 1e-8
    assert "Adamax(epsilon=1e-08)" in note
    schedule = model.optimizer._learning_rate
    assert model.ema_decay == recipes.GLOW_EMA_DECAY  # the recipe's weight average (digits28 is 28x28)
    splits = [m for m in model.distribution.bijector.submodules if isinstance(m, Split)]
    assert splits and not any(isinstance(m.conditioner, ChannelParameters) for m in splits)  # the recipe's
    other, _ = quality_sides.build_ours(cfg, (28, 28, 1), {"ema": "0", "split_prior": "channel"})
    assert other.ema_decay is None
    assert all(isinstance(m.conditioner, ChannelParameters)
               for m in other.distribution.bijector.submodules if isinstance(m, Split))
    for t in (0, 50, 99, 150, 199, 250):  # warmup 200 steps, then a half cosine ending at step 300
        expected = 1e-3 * min(1.0, (t + 1) / 200) * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0, t - 200) / 100)))
        assert float(schedule(t)) == pytest.approx(expected, rel=1e-5, abs=1e-10)  # float32


def test_torch_default_init_draws_hidden_convs_in_pytorchs_range_and_keeps_outputs_zero():
    import keras
    from tfp_glow.bench import quality_variants
    model, _ = quality_sides.build_ours(_cfg(), (28, 28, 1), {"conv_init": "torch"})
    convs = [l for layer in model.flow_layers for l in layer._flatten_layers() if isinstance(l, keras.layers.Conv2D)]
    hidden = [c for c in convs if c.name in ("conv_in", "conv_hidden")]
    out = [c for c in convs if c.name == "conv_out"]
    assert hidden and out
    for c in hidden:
        kh, kw, cin, _ = c.kernel.shape
        bound = 1 / math.sqrt(kh * kw * cin)
        k, b = np.asarray(c.kernel), np.asarray(c.bias)
        assert np.abs(k).max() <= bound and np.abs(k).max() > 0.8 * bound  # uniform over the whole range
        assert np.abs(b).max() <= bound and np.any(b != 0)
    assert all(not np.any(np.asarray(c.kernel)) for c in out)


def test_the_child_counts_the_steps_the_clip_cut():
    tight = quality_sides.run_child("ours", _cfg(step_budget="3", clip_norm=1e-6))
    off = quality_sides.run_child("ours", _cfg(step_budget="3", clip_norm=None, clip_norm_given=True))
    assert tight["clipped_steps"] == 3 and off["clipped_steps"] == 0
    assert all(c[3] > 1e-6 for c in tight["curve"])  # the largest pre-clip norm of each window


def test_an_ema_variant_evaluates_the_average():
    model, _ = quality_sides.build_ours(_cfg(), (28, 28, 1), {"ema": "0.99"})
    assert model.ema_decay == 0.99

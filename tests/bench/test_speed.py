"""`tfp_glow.bench` and `tfp_glow.bench.baselines_tfp`: analytic counts, bad input, a tiny
end-to-end run.

The benchmark itself is a command (`tfp-glow bench`), not a timed test: nothing here asserts a
speed.
"""
import numpy as np
import pytest

from tfp_glow import bench
from tfp_glow.bench import baselines_tfp, config


# ------------------------------------------------------------------------------ analytics
def test_level_shapes():
    assert config.level_shapes(28, 1, 2) == [(14, 14, 4), (7, 7, 8)]
    assert config.level_shapes(64, 3, 3) == [(32, 32, 12), (16, 16, 24), (8, 8, 48)]


def test_train_flops_of_the_default_glow():
    # by hand: level 0 at 14x14, C=4: conv3x3 2->400, conv1x1 400->400, conv3x3 400->4, 1x1 4->4;
    # level 1 at 7x7, C=8: 4->400, 400->400, 400->8, 8->8; the split prior conv3x3 2->4 at 14x14
    l0 = 2 * 14 * 14 * (9 * 2 * 400 + 400 * 400 + 9 * 400 * 4 + 4 * 4)
    l1 = 2 * 7 * 7 * (9 * 4 * 400 + 400 * 400 + 9 * 400 * 8 + 8 * 8)
    prior = 2 * 14 * 14 * 9 * 2 * 4
    f = config.train_flops_per_image(28, 1, 2, 4, 400, "affine")
    assert f["forward"] == 4 * l0 + 4 * l1 + prior
    assert f["train"] == 3 * f["forward"]
    assert 1.05e9 < f["train"] < 1.15e9  # "about 1.1 GFLOP per training image" (issue 5)
    additive = config.train_flops_per_image(28, 1, 2, 4, 400, "additive")
    assert additive["forward"] < f["forward"]


def test_memory_estimate_scales_and_recompute_saves():
    none = config.estimate_train_bytes(28, 1, 2, 4, 400, 64)
    assert config.estimate_train_bytes(28, 1, 2, 4, 400, 128) == pytest.approx(2 * none, rel=1e-6)
    assert config.estimate_train_bytes(28, 1, 2, 32, 400, 64, "step") < config.estimate_train_bytes(
        28, 1, 2, 32, 400, 64, "level") < config.estimate_train_bytes(28, 1, 2, 32, 400, 64)
    # the default configuration fits comfortably; a measured peak is about 250 MB
    assert 100 * 2**20 < none < 1 * 2**30


# -------------------------------------------------------------------------------- bad input
def _run(capsys, *argv):
    rc = bench.main(list(argv))
    return rc, capsys.readouterr()


def test_image_size_not_divisible_is_a_clear_error(capsys):
    rc, out = _run(capsys, "--image-size", "30")
    assert rc == 2
    assert "--image-size 30 is not divisible by 2^L = 4" in out.err and "--image-size 28" in out.err


def test_batch_too_big_for_memory_is_a_clear_error(capsys):
    rc, out = _run(capsys, "--batch", "1000000")
    assert rc == 2
    assert "GiB of memory is available" in out.err and "--batch" in out.err


def test_non_positive_values_are_errors(capsys):
    for argv in (["--steps", "0"], ["--hidden", "-1"], ["--iters", "0"]):
        rc, out = _run(capsys, *argv)
        assert rc == 2 and "error" in out.err


def test_unknown_options_and_choices_are_argparse_errors(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--bogus"])
    assert e.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--recompute", "sometimes"])
    assert "invalid choice" in capsys.readouterr().err


def test_scaling_table_options_are_checked(capsys):
    rc, out = _run(capsys, "--scaling-table", "--table-steps", "4,x")
    assert rc == 2 and "--table-steps" in out.err
    rc, out = _run(capsys, "--scaling-table", "--table-recompute", "none,always")
    assert rc == 2 and "always" in out.err


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for opt in ("--levels", "--steps", "--hidden", "--coupling", "--image-size", "--channels", "--batch",
                "--iters", "--warmup", "--no-xla", "--xla", "--tfp-xla", "--mixed-precision", "--recompute",
                "--only", "--rss", "--profile", "--scaling-table", "--table-steps", "--table-sizes",
                "--table-recompute", "--table-out", "--cell-timeout"):
        assert opt in text, opt


# ------------------------------------------------------------------------------ baselines
def test_tfp_glow_matches_our_parameter_count():
    """At the bench default the counts agree within 1%; the difference is exactly our LU 1x1 conv
    (2C^2 + C against TFP's C^2) and our learned top prior (2 x top latent)."""
    from tfp_glow.models import count_parameters, glow
    ours = count_parameters(glow((28, 28, 1), levels=2, steps=4, hidden_channels=400, coupling="affine"))
    theirs = baselines_tfp.count_parameters(baselines_tfp.tfp_glow((28, 28, 1), levels=2, steps=4, hidden=400))
    assert ours == 1_547_292
    assert theirs == 1_546_140
    assert abs(ours - theirs) / theirs < 0.01
    extra = 4 * ((4 * 4 + 4) + (8 * 8 + 8)) + 2 * 7 * 7 * 8
    assert ours - theirs == extra


def test_tfp_glow_trains_with_a_tape_step_and_rejects_bad_shapes():
    import tensorflow as tf
    with pytest.raises(ValueError, match="divisible by 4"):
        baselines_tfp.tfp_glow((10, 10, 1), levels=2)
    with pytest.raises(ValueError, match="coupling"):
        baselines_tfp.tfp_glow((8, 8, 1), coupling="multiplicative")
    dist = baselines_tfp.tfp_glow((8, 8, 1), levels=2, steps=1, hidden=8, coupling="additive")
    x = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 1)).astype(np.uint8)
    baselines_tfp.initialize_actnorm(dist, x, n_bits=5)
    step = baselines_tfp.make_train_step(dist, baselines_tfp.make_optimizer(1e-2), n_bits=5, jit_compile=False)
    before = [v.numpy().copy() for v in dist.trainable_variables]
    losses = [float(step(tf.constant(x))) for _ in range(3)]
    assert np.all(np.isfinite(losses))
    assert any(np.any(a != b.numpy()) for a, b in zip(before, dist.trainable_variables))
    bpd = baselines_tfp.make_eval_fn(dist, n_bits=5)(tf.constant(x)).numpy()
    np.testing.assert_array_equal(bpd, baselines_tfp.make_eval_fn(dist, n_bits=5)(tf.constant(x)).numpy())


def test_tfp_realnvp_builds_on_images():
    dist = baselines_tfp.tfp_realnvp((8, 8, 1), couplings=2, hidden_units=(16,))
    assert dist.event_shape.as_list() == [8, 8, 1]
    # two couplings of MLPs 32 -> 16 -> 64
    assert baselines_tfp.count_parameters(dist) == 2 * (32 * 16 + 16 + 16 * 64 + 64)
    z = dist.sample(3, seed=1)
    assert z.shape == (3, 8, 8, 1) and np.all(np.isfinite(dist.log_prob(z).numpy()))


# ------------------------------------------------------------------------------ end to end
def test_tiny_bench_prints_the_side_by_side_table(capsys):
    rc = bench.main(["--image-size", "8", "--steps", "1", "--hidden", "8", "--batch", "4", "--iters", "2",
                     "--warmup", "0", "--no-floor", "--no-matmul"])
    out = capsys.readouterr().out
    assert rc == 0, out
    for text in ("parameters: ours", "tfb.Glow", "train step img/s", "log_prob img/s", "sampling img/s",
                 "first train step, s", "train step peak", "ours/TFP", "achieved GFLOP/s"):
        assert text in out, text


def test_the_tarflow_reference_bench_says_what_it_needs(capsys):
    """Without PyTorch (the CI) it names the extra; with it, a missing reference file is named."""
    from tfp_glow import bench
    try:
        rc = bench.main(["--tarflow-reference", "/nonexistent/transformer_flow.py"])
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err if not isinstance(rc, str) else rc
    assert rc not in (0, None)
    assert ("tfp_glow[bench]" in err) or ("/nonexistent/transformer_flow.py" in err), err


def test_the_input_check_cost_bench_prints_both_step_times(capsys):
    from tfp_glow import bench
    rc = bench.main(["--input-check-cost", "--levels", "1", "--steps", "1", "--hidden", "8", "--image-size", "8",
                     "--batch", "4", "--iters", "2", "--warmup", "0", "--no-xla", "--no-matmul", "--no-floor"])
    out = capsys.readouterr().out
    assert rc == 0 and "ms with the check" in out and "ms without" in out, out
    from tfp_glow.training import input_checks
    assert input_checks.batch_code.__name__ == "batch_code"  # the switch is undone

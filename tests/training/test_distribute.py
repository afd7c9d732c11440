"""`tfp_glow.training.distribute` under `MirroredStrategy` over two logical CPU devices.

The logical devices must be configured before TensorFlow initialises its devices, so the
strategy part runs in a subprocess (this file run as a script) that writes a JSON report.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import support

TIMEOUT = 240


# ------------------------------------------------------------------------ child process
def _child(out_path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    from tfp_glow import data as data_lib
    from tfp_glow.training import distribute as D
    from tfp_glow.models import FlowConfig
    from tfp_glow.training import FlowModel

    report = {}
    strategy = D.get_strategy("mirrored", ["/cpu:0", "/cpu:1"])
    report["replicas"] = strategy.num_replicas_in_sync
    x = data_lib.load_digits("train")[:128]
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = FlowModel(FlowConfig("glow", (8, 8, 1), dict(levels=2, steps=2, hidden_channels=16)), n_bits=5)
        report["init_diff"] = D.initialize_actnorm_identically(model, D.global_init_batch(x, 64))
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
    report["jit_compile"] = bool(model.jit_compile)
    variables = D.actnorm_variables(model)
    report["n_actnorm_variables"] = len(variables)
    report["initialized"] = bool(model.is_initialized)

    def replica_gap(vs):
        gaps = []
        for v in vs:
            copies = [np.asarray(c) for c in strategy.experimental_local_results(v)]
            assert len(copies) == 2
            gaps.append(float(np.max(np.abs(copies[0] - copies[1]))))
        return max(gaps)

    report["actnorm_copy_gap_after_init"] = replica_gap(variables)
    # the initialised batch really leaves the first actnorm with zero mean / unit variance
    report["first_actnorm_scale_nonzero"] = bool(np.any(np.asarray(variables[0]) != 0))

    # initialising inside strategy.run (replica context) is refused with a clear error
    try:
        strategy.run(lambda: D.initialize_actnorm_identically(model, x[:8]))
        report["replica_context_error"] = None
    except RuntimeError as e:
        report["replica_context_error"] = str(e)

    ds = tf.data.Dataset.from_tensor_slices(x).batch(32)
    hist = model.fit(ds, epochs=1, steps_per_epoch=3, verbose=0)
    report["loss"] = [float(v) for v in hist.history["loss"]]
    report["all_weights_copy_gap_after_fit"] = replica_gap([w.value for w in model.weights])
    report["max_replica_difference_after_fit"] = D.max_replica_difference([w.value for w in model.weights],
                                                                          strategy)

    # the broadcast repairs a replica that drifted (e.g. initialised from its own shard)
    v = variables[0]
    v.values[1].assign(v.values[1] + 1.0)
    report["gap_after_corruption"] = D.max_replica_difference(variables, strategy)
    D.broadcast_from_first_replica(variables, strategy)
    report["gap_after_broadcast"] = D.max_replica_difference(variables, strategy)
    with open(out_path, "w") as f:
        json.dump(report, f)


# ------------------------------------------------------------------------------ parent
@pytest.fixture(scope="module")
def mirrored_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("mirrored") / "report.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    root = str(support.REPO)
    env["PYTHONPATH"] = os.pathsep.join([root, str(support.TESTS), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        log = proc.communicate(timeout=TIMEOUT)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=30)
        pytest.fail(f"the MirroredStrategy run did not finish within {TIMEOUT} s")
    assert proc.returncode == 0, f"the MirroredStrategy run failed:\n{log[-4000:]}"
    with open(out) as f:
        return json.load(f)


def test_two_replicas_without_xla(mirrored_report):
    assert mirrored_report["replicas"] == 2
    # XLA and mirrored variables on two CPU devices do not mix (docs/design.md, Speed): compile turns it off
    assert mirrored_report["jit_compile"] is False


def test_actnorm_identical_on_both_replicas(mirrored_report):
    r = mirrored_report
    assert r["n_actnorm_variables"] == 3 * 2 * 2  # (log_scale, bias, initialized) x 2 steps x 2 levels
    assert r["initialized"] and r["first_actnorm_scale_nonzero"]
    assert r["init_diff"] == 0.0
    assert r["actnorm_copy_gap_after_init"] == 0.0


def test_fit_keeps_replicas_identical_and_loss_finite(mirrored_report):
    r = mirrored_report
    assert len(r["loss"]) == 1 and np.all(np.isfinite(r["loss"]))
    assert r["all_weights_copy_gap_after_fit"] == 0.0
    assert r["max_replica_difference_after_fit"] == 0.0


def test_initialisation_in_replica_context_is_refused(mirrored_report):
    assert mirrored_report["replica_context_error"] and "cross-replica" in mirrored_report["replica_context_error"]


def test_broadcast_repairs_a_drifted_replica(mirrored_report):
    assert mirrored_report["gap_after_corruption"] == pytest.approx(1.0)
    assert mirrored_report["gap_after_broadcast"] == 0.0


# ---------------------------------------------------------------------- in-process, cheap
def test_unknown_strategy_lists_the_choices():
    from tfp_glow.training import distribute as D
    with pytest.raises(ValueError, match="none, mirrored, multiworker"):
        D.get_strategy("horovod")
    with pytest.raises(ValueError, match="mirrored"):
        D.get_strategy("none", devices=["/cpu:0"])


def test_none_is_the_default_strategy():
    import tensorflow as tf
    from tfp_glow.training import distribute as D
    s = D.get_strategy("none")
    assert s.num_replicas_in_sync == 1 and s is tf.distribute.get_strategy()
    assert D.is_chief(s) and not D.in_multi_worker_mode(s)
    logs = {"loss": tf.constant(1.0)}
    assert D.multi_worker_safe_logs(logs) is logs  # untouched outside multi-worker mode


def test_global_init_batch_is_deterministic_and_global():
    import tensorflow as tf
    from tfp_glow.training import distribute as D
    x = np.arange(1000, dtype=np.float32).reshape(500, 2)
    a, b = D.global_init_batch(x, 64, seed=3), D.global_init_batch(x.copy(), 64, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (64, 2) and len(np.unique(a[:, 0])) == 64
    np.testing.assert_array_equal(D.global_init_batch(x[:10], 64), x[:10])
    ds = tf.data.Dataset.from_tensor_slices(x).batch(48)
    np.testing.assert_array_equal(D.global_init_batch(ds, 100), x[:100])
    np.testing.assert_array_equal(D.global_init_batch(tf.data.Dataset.from_tensor_slices(x), 5), x[:5])
    with pytest.raises(ValueError, match="empty"):
        D.global_init_batch(x[:0])


if __name__ == "__main__":
    _child(sys.argv[1])

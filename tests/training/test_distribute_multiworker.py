"""Multi-worker training on `tf.distribute.MultiWorkerMirroredStrategy`, two local processes.

The test starts two worker processes on localhost (`TF_CONFIG` with two free ports) and one
single-process reference run, all of this same file run as a script. Each builds a tiny
`FlowModel` (vector RealNVP, `n_bits=None`, so there is no dequantization noise), initialises
ActNorm with `tfp_glow.training.distribute.initialize_actnorm_identically` from the same deterministic
global batch, trains a few steps on the same global batches with Adam and with SGD, and dumps
its ActNorm values and final weights. Only the chief may write checkpoints and samples.
"""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import support

GLOBAL_BATCH = 16
N_EXAMPLES = 64  # 4 steps per epoch
EPOCHS = 1
SEED = 7
TIMEOUT = 240  # seconds, for the whole cluster
VARIANTS = ("adam", "sgd_scaled")  # FlowModel as shipped (Adam), and SGD with the replica-scaled loss


# ------------------------------------------------------------------------ child process
def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_EXAMPLES, 2)) * np.array([1.0, 0.5]) + np.array([0.5, -1.0])
    x[:, 1] += 0.5 * x[:, 0] ** 2
    return x.astype(np.float32)


def _child(mode, out_dir, tag):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from tfp_glow.training import distribute as D  # noqa: E402  (strategy first: before any TF op)

    strategy = D.get_strategy("multiworker" if mode == "worker" else "none")
    import keras
    import tensorflow as tf
    from tfp_glow.training.callbacks import FlowCheckpoint, SampleGrid
    from tfp_glow.models import FlowConfig
    from tfp_glow.training import FlowModel, inputs

    class MultiWorkerFlowModel(FlowModel):
        """`FlowModel` whose step logs survive Keras 3's multi-worker reduction (idempotent, so
        harmless once `FlowModel` applies `multi_worker_safe_logs` itself)."""

        replica_scaled_loss = False

        def train_step(self, data):
            if not self.replica_scaled_loss:
                return D.multi_worker_safe_logs(super().train_step(data))
            # FlowModel.train_step with the loss divided by the number of replicas (what Keras 3's
            # own losses do): Keras sums the replicas' gradients, so this gives the gradient of
            # the global-batch mean. The fix training.py needs; kept here as the reference.
            x = inputs.features(data)
            with tf.GradientTape() as tape:
                _, nll, bpd = self.log_prob_and_bpd(self.preprocess(x))
                loss = tf.reduce_mean(bpd)
                scaled = loss / tf.distribute.get_strategy().num_replicas_in_sync
            grads = tape.gradient(scaled, self.trainable_variables)
            self.optimizer.apply(grads, self.trainable_variables)
            return D.multi_worker_safe_logs(self._update_metrics(loss, nll, bpd))

        def test_step(self, data):
            return D.multi_worker_safe_logs(super().test_step(data))

    x = _data()
    init_batch = D.global_init_batch(x, n=32, seed=0)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(GLOBAL_BATCH)  # no shuffle: same batches
    arrays, info = {}, {"chief": bool(D.is_chief(strategy)), "replicas": strategy.num_replicas_in_sync}
    for opt in VARIANTS:
        keras.utils.set_random_seed(SEED)
        with strategy.scope():
            model = MultiWorkerFlowModel(FlowConfig("realnvp", (2,), dict(hidden=(16,))), n_bits=None)
            model.replica_scaled_loss = opt == "sgd_scaled"
            info[f"{opt}_init_diff"] = D.initialize_actnorm_identically(model, init_batch)
            optimizer = keras.optimizers.Adam(1e-2) if opt == "adam" else keras.optimizers.SGD(1e-1)
            # the plain update rule: no warmup, no clipping (the comparison is about gradient scale)
            model.compile(optimizer=optimizer, warmup_steps=0, clip_norm=None, jit_compile=False)
        for i, v in enumerate(D.actnorm_variables(model)):
            arrays[f"{opt}_actnorm{i}"] = np.array(v.numpy())
        for i, w in enumerate(model.weights):
            arrays[f"{opt}_start{i}"] = np.array(w.numpy())
        callbacks = []
        if opt == "adam":
            callbacks = [FlowCheckpoint(os.path.join(out_dir, f"ckpt_{tag}")),
                         SampleGrid(os.path.join(out_dir, f"samples_{tag}"), n=16, data=x)]
        hist = model.fit(dataset, epochs=EPOCHS, verbose=0, shuffle=False, callbacks=callbacks)
        info[f"{opt}_loss"] = [float(v) for v in hist.history["loss"]]
        for i, w in enumerate(model.weights):
            arrays[f"{opt}_weight{i}"] = np.array(w.numpy())
        info["model_strategy_chief"] = bool(D.is_chief(model.distribute_strategy))
        info[f"{opt}_final_diff"] = D.max_replica_difference([w.value for w in model.weights], strategy)
    np.savez(os.path.join(out_dir, f"{tag}.npz"), **arrays)
    with open(os.path.join(out_dir, f"{tag}.json"), "w") as f:
        json.dump(info, f)


# ------------------------------------------------------------------------------ parent
def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _env(tf_config=None):
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["KERAS_BACKEND"] = "tensorflow"
    env["CUDA_VISIBLE_DEVICES"] = ""
    root = str(support.REPO)
    env["PYTHONPATH"] = os.pathsep.join([root, str(support.TESTS), env.get("PYTHONPATH", "")])
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("multiworker")
    ports = _free_ports(2)
    workers = [f"localhost:{p}" for p in ports]
    procs = []
    try:
        for i in range(2):
            cfg = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
            procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), "worker", str(out), f"w{i}"],
                                          env=_env(cfg), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True))
        procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), "single", str(out), "single"],
                                      env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        logs = []
        for p in procs:
            try:
                logs.append(p.communicate(timeout=TIMEOUT)[0])
            except subprocess.TimeoutExpired:
                pytest.fail(f"multi-worker run did not finish within {TIMEOUT} s")
        for p, log in zip(procs, logs):
            assert p.returncode == 0, f"child {p.args[2:]} failed:\n{log[-4000:]}"
    finally:
        for p in procs:  # only the processes started here, by their handles
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
    res = {}
    for tag in ("w0", "w1", "single"):
        with np.load(out / f"{tag}.npz") as z:
            arrays = dict(z)
        with open(out / f"{tag}.json") as f:
            res[tag] = (arrays, json.load(f))
    return out, res


def test_cluster_has_two_replicas_and_one_chief(cluster_run):
    _, res = cluster_run
    assert res["w0"][1]["replicas"] == 2 and res["w1"][1]["replicas"] == 2
    assert res["single"][1]["replicas"] == 1
    assert res["w0"][1]["chief"] and not res["w1"][1]["chief"]


@pytest.mark.parametrize("opt", VARIANTS)
def test_workers_start_from_identical_actnorm(cluster_run, opt):
    _, res = cluster_run
    (a0, i0), (a1, i1), (s, _) = res["w0"], res["w1"], res["single"]
    keys = sorted(k for k in a0 if k.startswith(f"{opt}_actnorm"))
    assert keys, "no ActNorm variables were dumped"
    assert i0[f"{opt}_init_diff"] == 0.0 and i1[f"{opt}_init_diff"] == 0.0
    for k in keys:
        np.testing.assert_array_equal(a0[k], a1[k], err_msg=k)
        np.testing.assert_allclose(a0[k], s[k], rtol=1e-6, atol=1e-6, err_msg=k)
    # the initialisation did something: the initialised flags are set, scales moved from 0
    assert any(np.any(a0[k] != 0) for k in keys)


@pytest.mark.parametrize("opt", VARIANTS)
def test_workers_end_with_identical_weights(cluster_run, opt):
    _, res = cluster_run
    (a0, i0), (a1, i1) = res["w0"], res["w1"]
    keys = sorted(k for k in a0 if k.startswith(f"{opt}_weight"))
    for k in keys:
        np.testing.assert_array_equal(a0[k], a1[k], err_msg=k)
    assert i0[f"{opt}_final_diff"] == 0.0 and i1[f"{opt}_final_diff"] == 0.0
    assert all(np.isfinite(v) for v in i0[f"{opt}_loss"])


def _max_weight_gap(res, opt):
    a0, s = res["w0"][0], res["single"][0]
    keys = sorted(k for k in a0 if k.startswith(f"{opt}_weight"))
    return max(float(np.max(np.abs(a0[k] - s[k]))) for k in keys)


def test_shipped_train_step_matches_single_process_run(cluster_run):
    """Two workers x half of each global batch == one process x the global batch (FlowModel's
    own train_step, Adam). Unscaled replica gradients (summed by Keras) would leave a gap of
    about 1e-3 through Adam's epsilon; the replica-scaled step gives about 1e-7."""
    _, res = cluster_run
    gap = _max_weight_gap(res, "adam")
    assert gap < 1e-5, f"multi-worker weights differ from the single-process run by {gap}"


def test_shipped_train_step_is_close_to_single_process_run(cluster_run):
    """Loose check of the same runs (Adam is nearly scale-invariant, so this alone would not
    catch unscaled gradients; the test above does)."""
    _, res = cluster_run
    gap = _max_weight_gap(res, "adam")
    assert gap < 1e-2, f"multi-worker weights differ from the single-process run by {gap}"
    np.testing.assert_allclose(res["w0"][1]["adam_loss"], res["single"][1]["adam_loss"], rtol=1e-3)


def test_replica_scaled_step_matches_single_process_run(cluster_run):
    """With the loss divided by the replica count, the two-worker run reproduces the
    single-process run: same initialisation, same global batches, same update (plain SGD, so any
    gradient-scale error would show)."""
    _, res = cluster_run
    gap = _max_weight_gap(res, "sgd_scaled")
    assert gap < 1e-5, f"multi-worker weights differ from the single-process run by {gap}"
    np.testing.assert_allclose(res["w0"][1]["sgd_scaled_loss"], res["single"][1]["sgd_scaled_loss"], rtol=1e-5)
    # and the steps did move the weights: the comparison is not between two untouched models
    a0 = res["w0"][0]
    moved = max(float(np.max(np.abs(a0[k] - a0[k.replace("_weight", "_start")])))
                for k in a0 if k.startswith("sgd_scaled_weight"))
    assert moved > 1e-2, moved


def test_the_chief_writes_checkpoints_and_samples(cluster_run):
    out, res = cluster_run
    chief_ckpt, chief_samples = out / "ckpt_w0", out / "samples_w0"
    assert chief_ckpt.is_dir() and any(p.name.startswith("ckpt-") for p in chief_ckpt.iterdir())
    assert chief_samples.is_dir() and any(p.suffix == ".png" for p in chief_samples.iterdir())
    # the model's own strategy knows who the chief is
    assert res["w0"][1]["model_strategy_chief"] and not res["w1"][1]["model_strategy_chief"]


def test_other_workers_write_no_checkpoints_or_samples(cluster_run):
    out, _ = cluster_run
    for d in (out / "ckpt_w1", out / "samples_w1"):
        assert not d.exists() or not any(d.iterdir()), f"non-chief worker wrote {sorted(os.listdir(d))}"


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], sys.argv[3])

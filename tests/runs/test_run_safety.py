"""A run directory never loses a user's work (issue 10): one test per reproduction.

1. a new run deletes nothing it did not write      5. 2-channel images train and draw grids
2. a corrupt latest checkpoint falls back            6. every failure is one `error:` line
3. two writers: the second gets a clear error        7. unreachable tfds data fails in seconds
4. --resume keeps the run's data, bits and lr        8. kill -9 at any moment: no lost epoch, no gap

The kill loop runs `TFP_GLOW_KILLS` kills (default 2, to stay fast in CI); run it with
`TFP_GLOW_KILLS=20` for the full loop.
"""
import csv
import errno
import json
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from tfp_glow import cli, runs
from cli_runner import run_cli
import support

TINY = ["--levels", "1", "--steps", "1", "--hidden", "4", "--no-xla", "--steps-per-epoch", "2", "--verbose", "0"]
REPO = str(support.REPO)


def _one_error_line(err):
    """The stderr of a failed command: exactly one `error: ...` line, no traceback."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def _metrics_epochs(run_dir):
    with open(os.path.join(run_dir, runs.METRICS), newline="") as f:
        return [int(r["epoch_1based"]) - 1 for r in csv.DictReader(f)]  # 0-based, as Keras counts


def _config(run_dir):
    with open(os.path.join(run_dir, runs.CONFIG)) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-epoch tiny Glow on the digits; tests copy it before changing it."""
    run_dir = str(tmp_path_factory.mktemp("safety") / "run")
    rc, out, err = run_cli(["train", "--epochs", "3", *TINY, "--warmup-steps", "0", "--run-dir", run_dir])
    assert rc == 0, out + err
    return run_dir


def _copy(run_dir, tmp_path, name="copy"):
    import shutil

    dst = str(tmp_path / name)
    shutil.copytree(run_dir, dst)
    return dst


# ------------------------------------------------------------- 1. nothing foreign is deleted
def test_1_new_run_deletes_nothing_it_did_not_write(tmp_path):
    proj = tmp_path / "proj"
    (proj / "logs").mkdir(parents=True)
    (proj / "config.json").write_text("{}")
    (proj / "logs" / "server.log").write_text("keep")
    rc, out, err = run_cli(["train", "--run-dir", str(proj), "--epochs", "1", *TINY])
    line = _one_error_line(err)
    assert rc == 2 and str(proj) in line and "--resume" in line and "--overwrite" in line
    assert (proj / "logs" / "server.log").read_text() == "keep" and (proj / "config.json").read_text() == "{}"
    # a folder without config.json but with files a run writes is not silently written over either
    other = tmp_path / "other"
    other.mkdir()
    (other / "metrics.csv").write_text("mine\n")
    rc, out, err = run_cli(["train", "--run-dir", str(other), "--epochs", "1", *TINY])
    assert rc == 2 and "metrics.csv" in _one_error_line(err)
    assert (other / "metrics.csv").read_text() == "mine\n"


# ------------------------------------------------------------------ 2. corrupt checkpoints
def _truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[:len(data) // 2])


def _flip_bit(path):
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x08
    open(path, "wb").write(bytes(data))


def test_2_corrupt_latest_checkpoint_falls_back_to_newest_intact(trained, tmp_path):
    run_dir = _copy(trained, tmp_path)
    ckpts = os.path.join(run_dir, "checkpoints")
    _truncate(os.path.join(ckpts, "ckpt-3.data-00000-of-00001"))
    # sample: reports the corrupt one, uses ckpt-2
    rc, out, err = run_cli(["sample", run_dir, "--n", "4", "--out", str(tmp_path / "s.png")])
    assert rc == 0, out + err
    assert "ckpt-3 is corrupt" in out and f"loaded {os.path.join(ckpts, 'ckpt-2')} (epoch 2)" in out
    assert os.path.isfile(os.path.join(ckpts, "ckpt-3.index.corrupt"))
    # a flipped bit (caught by the tensors' CRC) in ckpt-2: evaluate uses ckpt-1
    _flip_bit(os.path.join(ckpts, "ckpt-2.data-00000-of-00001"))
    rc, out, err = run_cli(["evaluate", run_dir, "--no-xla"])
    assert rc == 0, out + err
    assert "ckpt-2 is corrupt" in out and "Checksum" in out and f"loaded {os.path.join(ckpts, 'ckpt-1')}" in out
    # train --resume continues from ckpt-1: the metrics rows of epochs 2 and 3 are dropped and rewritten
    rc, out, err = run_cli(["train", "--resume", "--run-dir", run_dir, "--verbose", "0"])
    assert rc == 0, out + err
    assert "resuming from epoch 1" in out and "dropped 2 row(s)" in out
    assert _metrics_epochs(run_dir) == [0, 1, 2]
    assert runs.checkpoint_epoch(os.path.join(ckpts, "ckpt-3")) == 3
    # while a writer holds the run, a reader skips an unreadable checkpoint (it may be being
    # written) without renaming it
    _flip_bit(os.path.join(ckpts, "ckpt-3.data-00000-of-00001"))
    seen = []
    with runs.RunLock(run_dir):
        runs.load_run(run_dir, report=seen.append)
    assert "ckpt-3 is unreadable" in seen[0] and "skipped" in seen[0]
    assert seen[-1] == f"loaded {os.path.join(ckpts, 'ckpt-2')} (epoch 2)"
    assert os.path.isfile(os.path.join(ckpts, "ckpt-3.index"))
    # no checkpoint intact at all: load_run (the library) warns and falls back to model.weights.h5
    for name in os.listdir(ckpts):
        if name.endswith(".data-00000-of-00001"):
            _truncate(os.path.join(ckpts, name))
    seen = []
    with pytest.warns(runs.CorruptCheckpointWarning):
        runs.load_run(run_dir)
    runs.load_run(run_dir, report=seen.append)  # the corrupt ones were renamed: nothing to warn about
    assert seen == [f"loaded {os.path.join(run_dir, 'model.weights.h5')} (epoch 3)"]
    rc, out, err = run_cli(["export", run_dir, str(tmp_path / "exported")])
    assert rc == 0 and "model.weights.h5" in out, out + err
    # the SavedModel's n = 0 and empty batches give empty results (issue item 6)
    import tensorflow as tf

    served = tf.saved_model.load(str(tmp_path / "exported"))
    empty = served.signatures["sample_n"](n=tf.constant(0), temperature=tf.constant(0.7), seed=tf.constant(0))
    assert tuple(empty["images"].shape) == (0, 8, 8, 1) and tuple(empty["x"].shape) == (0, 8, 8, 1)
    scores = served.signatures["log_prob"](x=tf.zeros([0, 8, 8, 1], tf.uint8))
    assert tuple(scores["bits_per_dim"].shape) == (0,)
    two = served.signatures["sample_n"](n=tf.constant(2), temperature=tf.constant(0.7), seed=tf.constant(0))
    assert tuple(two["images"].shape) == (2, 8, 8, 1)
    rows = served.signatures["sample"](temperature=tf.zeros([0]), seed=tf.zeros([0], tf.int32))  # no rows
    assert tuple(rows["images"].shape) == (0, 8, 8, 1)


# -------------------------------------------------------------------- 3. concurrent writers
def test_3_a_second_writer_gets_a_clear_error_and_a_released_lock_does_not_block(tmp_path):
    run_dir = str(tmp_path / "busy")
    holder = runs.RunLock(run_dir).acquire()  # flock is per open file: this process's train conflicts too
    try:
        rc, out, err = run_cli(["train", "--run-dir", run_dir, "--epochs", "1", *TINY])
        line = _one_error_line(err)
        assert rc == 2 and run_dir in line and "in use" in line and f"pid {os.getpid()}" in line
        assert not runs.is_run_dir(run_dir)
    finally:
        holder.release()
    rc, out, err = run_cli(["train", "--run-dir", run_dir, "--epochs", "1", *TINY])
    assert rc == 0, out + err
    assert not os.path.exists(os.path.join(run_dir, runs.LOCK))  # released (a kill -9 is covered by test 8)


# ------------------------------------------------------------------------ 4. resume identity
def test_4_resume_keeps_data_bits_and_records_overrides_only_once_they_trained(tmp_path, monkeypatch):
    from tfp_glow.training import callbacks as cb
    import tensorflow as tf

    run_dir = str(tmp_path / "bits4")
    rc, out, err = run_cli(["train", "--epochs", "1", *TINY, "--n-bits", "4", "--warmup-steps", "0",
                         "--lr", "0.002", "--run-dir", run_dir])
    assert rc == 0, out + err
    other = tmp_path / "other.npz"
    np.savez(other, x=np.random.default_rng(0).integers(0, 256, (40, 8, 8, 1), dtype=np.uint8))
    rc, out, err = run_cli(["train", "--resume", "--run-dir", run_dir, "--data", str(other)])
    assert rc == 2 and "'digits'" in _one_error_line(err)
    rc, out, err = run_cli(["train", "--resume", "--run-dir", run_dir, "--n-bits", "8"])
    assert rc == 2 and "--n-bits 4" in _one_error_line(err)

    # an override whose first epoch fails (NaN) is not recorded ...
    original = cb.NaNGuard.on_train_batch_end

    def nan(self, batch, logs=None):
        return original(self, batch, {**(logs or {}), "loss": float("nan")})

    monkeypatch.setattr(cb.NaNGuard, "on_train_batch_end", nan)
    rc, out, err = run_cli(["train", "--resume", "--run-dir", run_dir, "--epochs", "2", "--lr", "1000"])
    assert rc == 1 and "lr 1000" in out
    assert _config(run_dir)["lr"] == 0.002 and _config(run_dir)["epochs"] == 1
    monkeypatch.setattr(cb.NaNGuard, "on_train_batch_end", original)
    # ... so a plain resume prints, uses and records the run's lr, with the run's 4 bits
    rc, out, err = run_cli(["train", "--resume", "--run-dir", run_dir, "--epochs", "2"])
    assert rc == 0, out + err
    assert "lr 0.002 " in out and "4 bits" in out
    saved_lr = tf.train.load_variable(os.path.join(run_dir, "checkpoints", "ckpt-2"),
                                      "optimizer/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE")
    assert np.isclose(saved_lr, 0.002)
    cfg = _config(run_dir)
    assert cfg["n_bits"] == 4 and cfg["epochs"] == 2 and cfg["epochs_done"] == 2 and cfg["lr"] == 0.002
    assert _metrics_epochs(run_dir) == [0, 1]


# ----------------------------------------------------------------------- 5. any channel count
def test_5_two_channel_images_train_and_grids_show_each_channel(tmp_path):
    from PIL import Image

    from tfp_glow import plots

    x = np.random.default_rng(1).integers(0, 256, (6, 4, 5, 2), dtype=np.uint8)
    path = plots.save_image_grid(str(tmp_path / "g.png"), x, scale=1, pad=0, cols=6)
    grid = np.asarray(Image.open(path))
    assert grid.shape == (4, 6 * 2 * 5)  # grayscale, each image as two panels side by side
    for i in range(6):
        cell = grid[:, i * 10:(i + 1) * 10]
        np.testing.assert_array_equal(cell, np.concatenate([x[i, :, :, 0], x[i, :, :, 1]], axis=1))

    data = tmp_path / "two.npz"
    np.savez(data, x=np.random.default_rng(2).integers(0, 256, (60, 8, 8, 2), dtype=np.uint8))
    run_dir = str(tmp_path / "two")
    rc, out, err = run_cli(["train", "--data", str(data), "--epochs", "1", *TINY, "--run-dir", run_dir])
    assert rc == 0, out + err
    for name in ("samples_epoch001.png", "samples_final.png"):
        assert os.path.isfile(os.path.join(run_dir, name))


# ------------------------------------------------------------------- 6. one `error:` line
def test_6_failures_are_one_error_line(trained, tmp_path, monkeypatch):
    import tfp_glow.cli.sample  # noqa: F401  (the module the patch below targets)

    # export onto an existing file
    existing = tmp_path / "existing"
    existing.write_text("x")
    rc, _, err = run_cli(["export", trained, str(existing)])
    assert rc == 2 and "exists" in _one_error_line(err) and existing.read_text() == "x"
    # batch size 0 and sample --n 0 are refused by the parser (argparse's own usage + error lines)
    for argv in (["train", "--batch-size", "0"], ["sample", trained, "--n", "0"]):
        rc, _, err = run_cli(argv)
        assert rc == 2 and "expected a positive integer" in err and "Traceback" not in err
    # sample(n=0) in the library: an empty batch of the right shape
    model = runs.load_run(trained)
    assert tuple(model.sample(0).shape) == (0, 8, 8, 1) and tuple(model.sample_images(0).shape) == (0, 8, 8, 1)
    assert model.sample_images(0).dtype == np.uint8
    # a read-only run directory (patched: root ignores chmod)
    real_open = os.open

    def read_only(path, *a, **k):
        if str(path).startswith(str(tmp_path / "ro")):
            raise PermissionError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", read_only)
    rc, _, err = run_cli(["train", "--run-dir", str(tmp_path / "ro"), "--epochs", "1", *TINY])
    assert rc == 2 and "cannot write" in _one_error_line(err)
    monkeypatch.setattr(os, "open", real_open)
    # a full disk while training: one line, and the run resumes with every complete epoch
    run_dir = str(tmp_path / "full")
    real_write = runs.metrics.atomic_write  # (the name metrics.csv's writes look up)

    def full_disk_at_epoch_2(path, text):
        if path.endswith(runs.METRICS) and text.count("\n") >= 3:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real_write(path, text)

    monkeypatch.setattr(runs.metrics, "atomic_write", full_disk_at_epoch_2)
    rc, _, err = run_cli(["train", "--run-dir", run_dir, "--epochs", "3", *TINY])
    assert rc == 1 and "no space left" in _one_error_line(err) and "metrics.csv" in err
    monkeypatch.setattr(runs.metrics, "atomic_write", real_write)
    rc, out, err = run_cli(["train", "--resume", "--run-dir", run_dir])
    assert rc == 0 and "resuming from epoch 1" in out, out + err
    assert _metrics_epochs(run_dir) == [0, 1, 2]
    # an unexpected exception: one line (with the hint), the traceback only with --debug; Ctrl-C: 130
    monkeypatch.setattr(tfp_glow.cli.sample.plots, "save_image_grid",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    rc, _, err = run_cli(["sample", trained, "--out", str(tmp_path / "x.png")])
    assert rc == 1 and "RuntimeError: boom" in _one_error_line(err) and "--debug" in err
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["--debug", "sample", trained, "--out", str(tmp_path / "x.png")])
    monkeypatch.setattr(tfp_glow.cli.sample.plots, "save_image_grid",
                        lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    rc, _, err = run_cli(["sample", trained, "--out", str(tmp_path / "x.png")])
    assert rc == 130 and "interrupted" in _one_error_line(err)


# ------------------------------------------------------------------------- 7. offline tfds
def test_7_unreachable_tfds_fails_within_seconds_and_leaves_no_tmp_files(tmp_path, monkeypatch):
    import tensorflow_datasets  # noqa: F401  (imported before the clock starts: a slow import)

    from tfp_glow.data import external

    # a server that never answers (a connect that hangs): the probe gives up after its timeout
    def hang(*args, **kwargs):
        time.sleep(30)
        raise TimeoutError("timed out")  # what a real connect does in the end

    monkeypatch.setattr(external.socket, "create_connection", hang)
    t0 = time.time()
    reason = external.probe_network(("example.invalid", 443), timeout=1.0)
    assert reason is not None and "did not answer within 1 s" in reason and time.time() - t0 < 3
    monkeypatch.undo()
    # tfds data that is not prepared, with the server unreachable (a closed local port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(external, "PROBE_ADDRESS", ("127.0.0.1", port))
    data_dir = tmp_path / "tfds"
    t0 = time.time()
    with pytest.raises(RuntimeError, match="cannot be downloaded"):
        external.load_tfds("mnist", data_dir=str(data_dir))
    assert time.time() - t0 < 15  # the probe's 3 s, plus building the tfds builder
    left = [os.path.join(r, f) for r, ds, fs in os.walk(tmp_path) for f in fs + ds if "tmp" in f.lower()]
    assert not left


# ---------------------------------------------------------------------------- 8. kill -9
_DRIVER = textwrap.dedent("""
    # Runs `tfp-glow ARGV`; with KILL_AT=<point>:<epoch>, SIGKILLs itself at that point of the
    # epoch record: after the metrics row, during the checkpoint write, or before config.json.
    import os, random, signal, sys, threading, time
    sys.path.insert(0, sys.argv[1])
    point, _, at = os.environ.get("KILL_AT", "::").partition(":")
    from tfp_glow import cli, runs
    import tensorflow as tf

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "after_metrics":
        real_row = runs.append_metrics_row
        def row(path, epoch, logs):
            real_row(path, epoch, logs)
            if epoch + 1 == int(at):
                die()
        runs.append_metrics_row = row
    elif point in ("during_checkpoint", "after_checkpoint"):
        real_save = tf.train.CheckpointManager.save
        def save(self, *a, checkpoint_number=None, **k):
            if checkpoint_number != int(at):
                return real_save(self, *a, checkpoint_number=checkpoint_number, **k)
            if point == "after_checkpoint":
                real_save(self, *a, checkpoint_number=checkpoint_number, **k)
                die()
            # the real write in a thread, killed 0-5 ms after its first file appears
            thread = threading.Thread(target=real_save, args=(self, *a), daemon=True,
                                      kwargs=dict(checkpoint_number=checkpoint_number, **k))
            thread.start()
            def started():
                return os.path.isdir(self.directory) and any(f.startswith(f"ckpt-{at}") for f in os.listdir(self.directory))
            while thread.is_alive() and not started():
                time.sleep(0.0005)
            time.sleep(random.uniform(0.0, 0.005))
            die()
        tf.train.CheckpointManager.save = save
    cli.main(sys.argv[2:])
""")


def _check_after_kill(run_dir, previous):
    """The invariants after a kill; returns the restorable epoch."""
    if not runs.is_run_dir(run_dir):
        return 0
    done = _config(run_dir).get("epochs_done", 0)
    found = runs.find_intact_checkpoint(os.path.join(run_dir, "checkpoints"), report=lambda m: None)
    epoch = runs.checkpoint_epoch(found) if found else 0
    assert epoch >= done, f"config.json records {done} epochs but the newest intact checkpoint has {epoch}"
    assert epoch >= previous, f"a finished epoch was lost: {previous} -> {epoch}"
    rows = _metrics_epochs(run_dir) if os.path.isfile(os.path.join(run_dir, runs.METRICS)) else []
    assert rows == list(range(len(rows))), f"metrics.csv has a gap or a duplicate: {rows}"
    assert epoch <= len(rows) <= epoch + 1, f"{len(rows)} metrics rows for checkpoint epoch {epoch}"
    return epoch


def _kill_in_random_epoch(proc, run_dir, epochs, rng):
    """SIGKILLs `proc` at a random moment of its second or third epoch (its record included),
    timed by the metrics rows as they appear (the first epoch includes tracing)."""
    def rows():
        return len(_metrics_epochs(run_dir)) if os.path.isfile(os.path.join(run_dir, runs.METRICS)) else 0

    start = rows()
    target = min(start + rng.randint(2, 3), epochs)  # the 1-based epoch to die in
    seen, last_dt = start, 0.5
    t_row = None
    while proc.poll() is None:
        n = rows()
        if n > seen:
            now = time.time()
            if t_row is not None:
                last_dt = (now - t_row) / (n - seen)
            seen, t_row = n, now
        if n >= target - 1 and n > start:
            break
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 1.2 * last_dt))
    proc.send_signal(signal.SIGKILL)


def test_8_kill_9_at_random_moments_loses_no_finished_epoch_and_leaves_no_metrics_gap(tmp_path):
    kills = int(os.environ.get("TFP_GLOW_KILLS", "2"))
    rng = random.Random(int(os.environ.get("TFP_GLOW_KILL_SEED", "0")))
    points = ["during_checkpoint", "after_metrics", "after_checkpoint"]
    epochs = 2 * kills + 3  # a random kill lands within 3 epochs: the run outlasts the kills
    run_dir = str(tmp_path / "killed")
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    argv = ["train", "--run-dir", run_dir, "--epochs", str(epochs), *TINY, "--sample-every", "1000"]
    done, log = 0, []
    for i in range(kills):
        # kills 1, 3, 5... land at a point of the epoch record, 2, 4, 6... at a random moment
        mode = points[(i // 2) % len(points)] if i % 2 == 0 else "random"
        kill_env = dict(env)
        if mode != "random":
            kill_env["KILL_AT"] = f"{mode}:{min(done + 1, epochs)}"
        proc = subprocess.Popen([sys.executable, str(driver), REPO, *argv, *(["--resume"] if runs.is_run_dir(run_dir) else [])],
                                env=kill_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if mode == "random":
            _kill_in_random_epoch(proc, run_dir, epochs, rng)
        out, _ = proc.communicate(timeout=300)
        if proc.returncode == 0:  # the random kill came after the run had ended
            log.append(f"kill {i + 1} ({mode}): too late, the run was complete")
            break
        assert proc.returncode == -signal.SIGKILL, out
        ckpt_dir = os.path.join(run_dir, "checkpoints")
        files = sorted(os.listdir(ckpt_dir)) if os.path.isdir(ckpt_dir) else []
        done = _check_after_kill(run_dir, done)
        log.append(f"kill {i + 1} ({mode}): restorable epoch {done}; checkpoints/ held {files}")
    print("\n".join(log))
    rc, out, err = run_cli(argv + ["--resume"])
    assert rc == 0, out + err
    assert _metrics_epochs(run_dir) == list(range(epochs))
    assert runs.checkpoint_epoch(runs.find_intact_checkpoint(os.path.join(run_dir, "checkpoints"))) == epochs
    assert _config(run_dir)["epochs_done"] == epochs
    assert not os.path.exists(os.path.join(run_dir, runs.LOCK))

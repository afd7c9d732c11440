"""tfp_glow.serving.signatures, with a context: a class-conditional model's `log_prob`, `sample`,
`encode`, `decode` with a label input and its `classify` signature, loaded in a child process
where `tfp_glow`, TensorFlow Probability and Keras cannot be imported; numbers equal to the live
model's and to the shared sampler's draws. `sample` takes rows like the unconditional one (and
format 1's scalar temperature and seed)."""
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import support
from tfp_glow import serving
from tfp_glow.data import labeled
from tfp_glow.models import sampling
from tfp_glow.training.conditional import ConditionalFlowModel
from tfp_glow.models import FlowConfig

CONFIG = support.TINY_CONDITIONAL_GLOW

CHILD = textwrap.dedent(r'''
    import importlib.abc, json, os, sys

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tfp_glow", "tensorflow_probability"):
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Blocker())
    import numpy as np
    import tensorflow as tf

    job_dir = sys.argv[1]
    with open(os.path.join(job_dir, "job.json")) as f:
        job = json.load(f)
    loaded = tf.saved_model.load(job["path"])
    report = {"signatures": sorted(loaded.signatures.keys()),
              "config": json.loads(loaded.config_json.numpy().decode())}
    for call in job["calls"]:
        inputs = {k: tf.constant(np.load(os.path.join(job_dir, v))) for k, v in call["inputs"].items()}
        try:
            out = loaded.signatures[call["signature"]](**inputs)
        except Exception as e:
            report[call["id"]] = {"error": f"{type(e).__name__}: {e}"}
            continue
        np.savez(os.path.join(job_dir, call["id"] + ".npz"), **{k: v.numpy() for k, v in out.items()})
        report[call["id"]] = {"ok": sorted(out)}
    report["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("tfp_glow", "tensorflow_probability"))
    with open(os.path.join(job_dir, "report.json"), "w") as f:
        json.dump(report, f)
''')


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export_conditional")
    x, y, _, _ = labeled.load_labeled_split("digits", "train")
    keras.utils.set_random_seed(0)
    model = ConditionalFlowModel(CONFIG, n_bits=5)
    model.compile(keras.optimizers.Adam(1e-2), jit_compile=False)
    model.fit(x[:128], y[:128], batch_size=64, epochs=1, verbose=0, shuffle=False)
    path = str(root / "saved")
    model.export(path)
    xt, yt, _, _ = labeled.load_labeled_split("digits", "test")
    xt, yt = xt[:5], yt[:5].astype(np.int32)
    z = np.random.default_rng(1).normal(size=(5, 8, 8, 1)).astype(np.float32)
    calls = {
        "log_prob": ("log_prob", dict(x=xt, label=yt)),
        "classify": ("classify", dict(x=xt)),
        "encode": ("encode", dict(x=xt, label=yt)),
        "decode": ("decode", dict(z=z, label=yt)),
        "sample": ("sample", dict(label=np.array([0, 3, 3], np.int32), temperature=np.float32(0.7),
                                  seed=np.int32(4))),
        # rows, as a REST body {"instances": [{"label": 0, "temperature": 0.7, "seed": 5}, ...]} gives them
        "sample_rows": ("sample", dict(label=np.int32([0, 3, 3, 7]), temperature=np.float32([0.7, 0.7, 1.0, 0.0]),
                                       seed=np.int32([5, 5, 5, 9]))),
        "sample_rows_one_t": ("sample", dict(label=np.int32([0, 3]), temperature=np.float32(0.7),
                                             seed=np.int32([5, 9]))),
        "sample_rows_none": ("sample", dict(label=np.zeros([0], np.int32), temperature=np.zeros([0], np.float32),
                                            seed=np.zeros([0], np.int32))),
        "bad_sample_lengths": ("sample", dict(label=np.int32([0, 1]), temperature=np.float32([0.7, 0.7, 0.7]),
                                              seed=np.int32([1, 2]))),
        "bad_sample_rank": ("sample", dict(label=np.int32([0, 1]), temperature=np.float32(0.7),
                                           seed=np.int32([[1, 2]]))),
        "bad_sample_temperature": ("sample", dict(label=np.int32([0, 1]), temperature=np.float32([0.7, -1.0]),
                                                  seed=np.int32([1, 2]))),
        "default": ("serving_default", dict(x=xt, label=yt)),
        # no rows in, no rows out (convolutions reject an empty batch, so each signature guards it)
        "sample_none": ("sample", dict(label=np.zeros([0], np.int32), temperature=np.float32(0.7), seed=np.int32(4))),
        "log_prob_none": ("log_prob", dict(x=xt[:0], label=yt[:0])),
        "classify_none": ("classify", dict(x=xt[:0])),
        "encode_none": ("encode", dict(x=xt[:0], label=yt[:0])),
        "decode_none": ("decode", dict(z=z[:0], label=yt[:0])),
        "bad_range": ("log_prob", dict(x=xt, label=np.array([0, 1, 2, 3, 10], np.int32))),
        "bad_count": ("encode", dict(x=xt, label=np.array([0, 1], np.int32))),
        "bad_dtype": ("log_prob", dict(x=xt, label=yt.astype(np.float32))),
    }
    job_dir = root / "job"
    job_dir.mkdir()
    entries = []
    for cid, (sig, inputs) in calls.items():
        names = {}
        for k, v in inputs.items():
            names[k] = f"{cid}__{k}.npy"
            np.save(str(job_dir / names[k]), np.asarray(v))
        entries.append(dict(id=cid, signature=sig, inputs=names))
    with open(job_dir / "job.json", "w") as f:
        json.dump({"path": path, "calls": entries}, f)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run([sys.executable, "-I", "-c", CHILD, str(job_dir)], cwd=str(root), env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(job_dir / "report.json") as f:
        report = json.load(f)

    def result(cid):
        assert "ok" in report[cid], report[cid]
        with np.load(str(job_dir / f"{cid}.npz")) as f:
            return {k: f[k] for k in f.files}

    return dict(model=model, report=report, result=result, x=xt, y=yt, z=z)


def test_signatures_load_without_tfp_glow(exported):
    report = exported["report"]
    assert report["modules"] == []
    assert set(report["signatures"]) == {"log_prob", "classify", "sample", "encode", "decode", "serving_default"}
    assert report["config"]["num_classes"] == 10


def test_numbers_equal_the_live_model(exported):
    model, result, x, y, z = (exported[k] for k in ("model", "result", "x", "y", "z"))
    np.testing.assert_allclose(result("log_prob")["log_prob"], model.log_prob(x, y), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(result("default")["bits_per_dim"],
                               model.predict_step((tf.constant(x), tf.constant(y)))["bits_per_dim"], rtol=1e-5)
    pred, log_post = model.classify(x, return_log_probs=True)
    out = result("classify")
    np.testing.assert_array_equal(out["label"], pred)
    np.testing.assert_allclose(out["log_posterior"], log_post, atol=1e-4)
    np.testing.assert_allclose(np.exp(out["log_posterior"]).sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(result("encode")["z"], model.encode(x, y), atol=1e-4)
    np.testing.assert_allclose(result("decode")["x"], model.decode(z, y), atol=1e-4)
    s = result("sample")
    assert s["images"].shape == (3, 8, 8, 1) and s["images"].dtype == np.uint8
    # the same draw through the live model: z = T * stateless_normal(seed=[4, 0])
    zs = tf.random.stateless_normal([3, 8, 8, 1], seed=[4, 0]) * 0.7
    np.testing.assert_allclose(s["x"], model.decode(zs, [0, 3, 3]), atol=1e-4)


def test_no_rows_give_empty_outputs(exported):
    result = exported["result"]
    s = result("sample_none")
    assert s["images"].shape == (0, 8, 8, 1) and s["images"].dtype == np.uint8 and s["x"].shape == (0, 8, 8, 1)
    assert {k: v.shape for k, v in result("log_prob_none").items()} == {"log_prob": (0,), "nll": (0,),
                                                                        "bits_per_dim": (0,)}
    c = result("classify_none")
    assert c["label"].shape == (0,) and c["log_posterior"].shape == (0, 10) and c["marginal_log_prob"].shape == (0,)
    assert result("encode_none")["z"].shape == (0, 8, 8, 1)
    assert result("decode_none")["images"].shape == (0, 8, 8, 1)


def test_bad_labels_are_refused(exported):
    report = exported["report"]
    assert "labels must be in 0..9" in report["bad_range"]["error"]
    assert "one label per example" in report["bad_count"]["error"]
    assert "error" in report["bad_dtype"]
    with pytest.raises(ValueError, match="class-conditional"):
        serving.export_conditional_saved_model(
            type("M", (), {"num_classes": 0, "is_image": True})(), "/tmp/unused")


def test_sample_takes_rows_like_the_unconditional_one(exported):
    model, result, report = exported["model"], exported["result"], exported["report"]
    got = result("sample_rows")
    assert got["images"].shape == (4, 8, 8, 1) and got["images"].dtype == np.uint8
    t, s, y = np.float32([0.7, 0.7, 1.0, 0.0]), np.int32([5, 5, 5, 9]), [0, 3, 3, 7]
    for i in range(4):  # row i: the shared sampler's row, decoded with label i
        z = sampling.draw_latent(model.latent_shape, 1, float(t[i]), int(s[i]))
        np.testing.assert_allclose(got["x"][i], model.decode(z, [y[i]]).numpy()[0], atol=1e-4)
    # and FlowModel.sample's draw: label 3 at T = 0.7 and 1.0 of seed 5 is one latent at two temperatures
    np.testing.assert_allclose(got["x"][1:3], model.sample(1, [0.7, 1.0], seed=5, labels=[3]).numpy()[0], atol=1e-4)
    one_t = result("sample_rows_one_t")  # a scalar temperature applies to every row
    np.testing.assert_allclose(one_t["x"][0], got["x"][0], atol=1e-5)
    z9 = sampling.draw_latent(model.latent_shape, 1, 0.7, 9)
    np.testing.assert_allclose(one_t["x"][1], model.decode(z9, [3]).numpy()[0], atol=1e-4)
    assert result("sample_rows_none")["x"].shape == (0, 8, 8, 1)
    assert "expects temperature: [batch] (one per label) or [] (one for all)" in report["bad_sample_lengths"]["error"]
    assert "expects seed: [batch] (one per label) or [] (one for all)" in report["bad_sample_rank"]["error"]
    assert "expects temperature >= 0" in report["bad_sample_temperature"]["error"]


def test_the_format_1_call_draws_all_rows_at_once(exported):
    """A scalar seed: `sample_n`'s draw of N rows (format 1's numbers), as `sample_stateless`."""
    model, result = exported["model"], exported["result"]
    live = serving.sample_stateless(model, 3, 0.7, 4, labels=[0, 3, 3])
    np.testing.assert_allclose(result("sample")["x"], live["x"].numpy(), atol=1e-4)
    np.testing.assert_array_equal(result("sample")["images"], live["images"].numpy())
    with pytest.raises(ValueError, match="labels"):
        serving.sample_stateless(model, 3, 0.7, 4)


def test_one_builder_serves_both_kinds(exported):
    model = exported["model"]
    assert serving.signature_names(model) == serving.CONDITIONAL_SIGNATURES
    fns = serving.serving_functions(model)
    assert serving.conditional_serving_functions(model) is fns
    spec = fns["sample"].input_signature
    assert [s.name for s in spec] == ["label", "temperature", "seed"] and spec[1].shape.rank is None
    assert [s.name for s in fns["log_prob"].input_signature] == ["x", "label"]
    assert [s.name for s in fns["classify"].input_signature] == ["x"]


def test_export_saved_model_writes_a_conditional_model_too(exported, tmp_path):
    """The CLI's `tfp-glow export` calls `export_saved_model` for every model."""
    model, x = exported["model"], exported["x"]
    with pytest.raises(ValueError, match=r"Unknown signatures \['sample_n'\]; a class-conditional model exports"):
        serving.export_saved_model(model, str(tmp_path / "bad"), signatures=["sample_n"])
    path = serving.export_saved_model(model, str(tmp_path / "one"), signatures=["classify"], serving_default="classify")
    loaded = tf.saved_model.load(path)
    assert sorted(loaded.signatures.keys()) == ["classify", "serving_default"]
    assert serving.read_metadata(path)["num_classes"] == 10
    np.testing.assert_array_equal(loaded.signatures["serving_default"](x=tf.constant(x))["label"], model.classify(x))

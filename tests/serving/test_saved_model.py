"""tfp_glow.serving.saved_model: a SavedModel served without tfp_glow, numbers equal to the live model.

One small Glow (and one 2-D RealNVP) is trained for a few steps and exported; one child
process, in which `tfp_glow`, TensorFlow Probability and Keras cannot be imported, loads both
SavedModels with `tf.saved_model.load` and calls every signature on two batch sizes (and with
bad inputs). `saved_model_cli show`/`run` run concurrently with it.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_glow import data as data_lib
from tfp_glow import serving
from tfp_glow.models import FlowConfig
from tfp_glow.training import FlowModel
import support

GLOW = support.TINY_GLOW
# a TF Serving REST body in the row format: one object per example
SAMPLE_ROWS = [{"temperature": 0.7, "seed": 5}, {"temperature": 1.0, "seed": 5}, {"temperature": 0.0, "seed": 9}]


def rest_rows(instances):
    """The tensors TF Serving builds from a REST `{"instances": [...]}` body (row format).

    Each named input is the stack of its per-instance values, batch first; `{"b64": s}` values
    are base64-decoded into bytes (TF Serving does this for inputs named `*_bytes`). Every
    input must have the same batch size, which is what a signature needs to take rows.
    """
    import json as json_lib
    instances = json_lib.loads(json_lib.dumps({"instances": instances}))["instances"]  # a JSON round trip
    out = {}
    for key in instances[0]:
        values = [row[key] for row in instances]
        if isinstance(values[0], dict) and "b64" in values[0]:
            out[key] = np.array([base64.b64decode(v["b64"]) for v in values])
        else:
            out[key] = np.array(values, dtype=np.float32 if isinstance(values[0], float) else np.int32)
    return out
VECTOR = FlowConfig("realnvp", (2,), dict(hidden=(16,)))
BATCHES = (3, 7)
SEEDS = (5, 11)

# Runs in the child, with a clean environment: nothing from the repository is importable.
CHILD = textwrap.dedent(r'''
    import importlib.abc, json, os, sys

    BLOCKED = ("tfp_glow", "tensorflow_probability")
    WATCHED = BLOCKED + ("keras", "tf_keras")

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Blocker())
    report = {}
    try:
        import tfp_glow  # noqa: F401
        report["tfp_glow_importable"] = True
    except ImportError:
        report["tfp_glow_importable"] = False

    import numpy as np
    import tensorflow as tf

    def watched():
        return sorted(m for m in sys.modules if m.split(".")[0] in WATCHED)

    report["modules_after_import"] = watched()  # `import tensorflow` itself imports keras
    job_dir = sys.argv[1]
    with open(os.path.join(job_dir, "job.json")) as f:
        job = json.load(f)
    models = {}
    for name, path in job["models"].items():
        loaded = tf.saved_model.load(path)
        models[name] = loaded
        report[name + ":signatures"] = sorted(loaded.signatures.keys())
        report[name + ":config"] = json.loads(loaded.config_json.numpy().decode())
        np.savez(os.path.join(job_dir, name + "__variables.npz"),
                 *[v.numpy() for v in loaded.flow_variables])
    for call in job["calls"]:
        loaded = models[call["model"]]
        if call["via"] == "signature":
            fn = loaded.signatures[call["signature"]]
        else:
            fn = getattr(loaded, call["signature"])
        inputs = {k: tf.constant(np.load(os.path.join(job_dir, v))) for k, v in call["inputs"].items()}
        try:
            out = fn(**inputs)
        except Exception as e:  # the parent checks the message
            report[call["id"]] = {"error": f"{type(e).__name__}: {e}"}
            continue
        np.savez(os.path.join(job_dir, call["id"] + ".npz"), **{k: v.numpy() for k, v in out.items()})
        report[call["id"]] = {"ok": sorted(out)}
    report["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in WATCHED)
    with open(os.path.join(job_dir, "report.json"), "w") as f:
        json.dump(report, f)
''')


def _saved_model_cli():
    exe = shutil.which("saved_model_cli")
    return [exe] if exe else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


def _clean_env():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def _train(config, n_bits, x, steps_batch):
    keras.utils.set_random_seed(0)
    model = FlowModel(config, n_bits=n_bits)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    model.fit(x, batch_size=steps_batch, epochs=1, shuffle=False, verbose=0)
    return model


class Job:
    """Inputs written for the child, and what it sent back."""

    def __init__(self, directory):
        self.dir = directory
        self.models, self.calls = {}, []

    def add(self, call_id, model, signature, via="signature", **inputs):
        names = {}
        for k, v in inputs.items():
            names[k] = f"{call_id}__in_{k}.npy"
            np.save(os.path.join(self.dir, names[k]), np.asarray(v))
        self.calls.append(dict(id=call_id, model=model, signature=signature, via=via, inputs=names))

    def write(self):
        with open(os.path.join(self.dir, "job.json"), "w") as f:
            json.dump({"models": self.models, "calls": self.calls}, f)

    def result(self, call_id):
        entry = self.report[call_id]
        assert "ok" in entry, f"{call_id} failed in the child: {entry}"
        with np.load(os.path.join(self.dir, call_id + ".npz")) as f:
            return {k: f[k] for k in f.files}

    def error(self, call_id):
        entry = self.report[call_id]
        assert "error" in entry, f"{call_id} should have failed; returned {entry}"
        return entry["error"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    digits = data_lib.load_digits("train")
    glow = _train(GLOW, 5, digits[:96], 32)
    vector = _train(VECTOR, None, data_lib.toy_2d("moons", seed=0)[:192].astype(np.float32), 64)

    glow_dir, vector_dir = str(root / "glow"), str(root / "vector")
    serving.export_saved_model(glow, glow_dir)
    serving.export_saved_model(vector, vector_dir)

    job_dir = root / "job"
    job_dir.mkdir()
    job = Job(str(job_dir))
    job.models = {"glow": glow_dir, "vector": vector_dir}
    test_images = data_lib.load_digits("test")
    z_glow = np.random.default_rng(1).normal(size=(max(BATCHES), *glow.latent_shape)).astype(np.float32)
    x_float = np.asarray(glow.preprocess(test_images[:max(BATCHES)]))
    moons = data_lib.toy_2d("moons", seed=2)[:max(BATCHES)].astype(np.float32)
    for b in BATCHES:
        job.add(f"glow_log_prob_{b}", "glow", "log_prob", x=test_images[:b])
        job.add(f"glow_default_{b}", "glow", "serving_default", x=test_images[:b])
        job.add(f"glow_log_prob_fn_{b}", "glow", "log_prob", via="function", x=test_images[:b])
        job.add(f"glow_log_prob_float_{b}", "glow", "log_prob_float", x=x_float[:b])
        job.add(f"glow_encode_{b}", "glow", "encode", x=test_images[:b])
        job.add(f"glow_decode_{b}", "glow", "decode", z=z_glow[:b])
        job.add(f"vector_log_prob_{b}", "vector", "log_prob", x=moons[:b])
        job.add(f"vector_encode_{b}", "vector", "encode", x=moons[:b])
        job.add(f"vector_decode_{b}", "vector", "decode", z=moons[:b])
    for n in BATCHES:
        for seed in SEEDS:
            for name in ("glow", "vector"):
                job.add(f"{name}_sample_{n}_{seed}", name, "sample_n", n=np.int32(n),
                        temperature=np.float32(0.7), seed=np.int32(seed))
    # batched sample: one sample per row (TF Serving's row format), as a REST body would give it
    for name in ("glow", "vector"):
        job.add(f"{name}_sample_rows", name, "sample", **rest_rows(SAMPLE_ROWS))
    # encoded images (the b64 convention), PNG of the test digits and one 8x8 RGB JPEG
    pngs = np.array([tf.io.encode_png(im).numpy() for im in test_images[:max(BATCHES)]])
    for b in BATCHES:
        job.add(f"glow_log_prob_image_{b}", "glow", "log_prob_image", image_bytes=pngs[:b])
        job.add(f"glow_encode_image_{b}", "glow", "encode_image", image_bytes=pngs[:b])
    rows = rest_rows([{"image_bytes": {"b64": base64.b64encode(p).decode()}} for p in pngs[:2]])
    job.add("glow_log_prob_image_rest", "glow", "log_prob_image", **rows)
    rgb = np.repeat(test_images[:1], 3, axis=-1)[0]
    job.add("glow_log_prob_image_rgb_jpeg", "glow", "log_prob_image",
            image_bytes=np.array([tf.io.encode_jpeg(rgb).numpy(), pngs[1]]))
    job.add("bad_image_size", "glow", "log_prob_image",
            image_bytes=np.array([pngs[0], tf.io.encode_png(np.zeros((16, 16, 1), np.uint8)).numpy()]))
    job.add("bad_sample_lengths", "glow", "sample", temperature=np.float32([0.5, 1.0]), seed=np.int32([1]))
    # bad inputs
    job.add("bad_shape_sig", "glow", "log_prob", x=np.zeros((2, 16, 16, 1), np.uint8))
    job.add("bad_rank_sig", "glow", "encode", x=np.zeros((2, 8, 8), np.uint8))
    job.add("bad_dtype_sig", "glow", "log_prob", x=np.zeros((2, 8, 8, 1), np.float32))
    job.add("bad_shape_fn", "glow", "log_prob", via="function", x=np.zeros((2, 4, 4, 1), np.uint8))
    job.add("bad_dtype_fn", "glow", "log_prob", via="function", x=np.zeros((2, 8, 8, 1), np.float32))
    job.add("bad_latent_sig", "glow", "decode", z=np.zeros((2, 4, 4, 4), np.float32))
    job.add("bad_vector_sig", "vector", "log_prob", x=np.zeros((2, 3), np.float32))
    job.add("bad_n_sig", "glow", "sample_n", n=np.int32(-1), temperature=np.float32(1.0), seed=np.int32(0))
    job.write()
    cli_input = str(root / "x.npy")
    np.save(cli_input, test_images[:2])
    cli_images = str(root / "images.npy")
    np.save(cli_images, pngs[:2])  # a string array: saved_model_cli feeds it to image_bytes

    # Everything below runs concurrently: one child per process, a clean cwd and environment.
    cwd = str(root)
    env = _clean_env()
    run = ["run", "--dir", glow_dir, "--tag_set", "serve", "--signature_def", "log_prob", "--inputs"]
    procs = {
        "child": subprocess.Popen([sys.executable, "-I", "-c", CHILD, str(job_dir)], cwd=cwd, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        "show": subprocess.Popen(_saved_model_cli() + ["show", "--dir", glow_dir, "--all"], cwd=cwd, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        "run": subprocess.Popen(_saved_model_cli() + run + [f"x={cli_input}"], cwd=cwd, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        # rows: a batch of temperatures and seeds, and a batch of encoded images
        "run_sample": subprocess.Popen(
            _saved_model_cli() + ["run", "--dir", glow_dir, "--tag_set", "serve", "--signature_def", "sample",
                                  "--input_exprs", "temperature=[0.7,1.0,0.0];seed=[5,5,9]"],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        "run_image": subprocess.Popen(
            _saved_model_cli() + ["run", "--dir", glow_dir, "--tag_set", "serve", "--signature_def",
                                  "log_prob_image", "--inputs", f"image_bytes={cli_images}"],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    }
    outputs = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        outputs[name] = (proc.returncode, out, err)
    code, out, err = outputs["child"]
    assert code == 0, f"child failed:\n{out}\n{err[-4000:]}"
    with open(job_dir / "report.json") as f:
        job.report = json.load(f)
    return dict(glow=glow, vector=vector, job=job, cli=outputs, images=test_images, x_float=x_float,
                z_glow=z_glow, moons=moons, glow_dir=glow_dir)


def _rel_close(a, b, rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def test_child_loaded_without_tfp_glow_tfp_or_keras(setup):
    report = setup["job"].report
    assert report["tfp_glow_importable"] is False
    assert not [m for m in report["modules"] if m.startswith(("tfp_glow", "tensorflow_probability"))]
    # whatever Keras modules `import tensorflow` brings, loading and calling added none
    assert report["modules"] == report["modules_after_import"]


def test_signatures_and_metadata(setup):
    report = setup["job"].report
    assert report["glow:signatures"] == sorted(
        ["log_prob", "log_prob_float", "log_prob_image", "sample", "sample_n", "encode", "encode_image", "decode",
         "serving_default"])
    assert report["vector:signatures"] == sorted(
        ["log_prob", "sample", "sample_n", "encode", "decode", "serving_default"])
    config = report["glow:config"]
    assert config["config"] == GLOW.to_dict() and config["n_bits"] == 5
    assert config["event_shape"] == [8, 8, 1] and config["latent_shape"] == list(setup["glow"].latent_shape)


def test_every_variable_is_saved(setup):
    for name in ("glow", "vector"):
        model = setup[name]
        with np.load(os.path.join(setup["job"].dir, name + "__variables.npz")) as f:
            saved = [f[f"arr_{i}"] for i in range(len(f.files))]
        assert len(saved) == len(model.weights)  # actnorm `initialized`, LU permutation/sign included
        for live, value in zip(model.distribution.variables, saved):
            np.testing.assert_array_equal(live.numpy(), value)


@pytest.mark.parametrize("b", BATCHES)
def test_log_prob_equals_live_evaluation(setup, b):
    model, job = setup["glow"], setup["job"]
    x = setup["images"][:b]
    live = {k: v.numpy() for k, v in model.predict_step(x).items()}  # FlowModel's evaluation
    for call in (f"glow_log_prob_{b}", f"glow_default_{b}", f"glow_log_prob_fn_{b}"):
        got = job.result(call)
        assert set(got) == {"log_prob", "nll", "bits_per_dim"}
        assert got["log_prob"].shape == (b,)
        for key in got:
            _rel_close(got[key], live[key])
    _rel_close(job.result(f"glow_log_prob_{b}")["log_prob"], model(x).numpy())
    # the discrete-data bound: bpd = (-log p + D n_bits ln 2) / (D ln 2)
    got = job.result(f"glow_log_prob_{b}")
    _rel_close(got["bits_per_dim"], (-got["log_prob"] / (64 * np.log(2.0))) + 5)

    x_float = setup["x_float"][:b]
    live_float = model.log_prob_and_bpd(tf.constant(x_float))
    got = job.result(f"glow_log_prob_float_{b}")
    _rel_close(got["log_prob"], live_float[0].numpy())
    _rel_close(got["bits_per_dim"], live_float[2].numpy())


@pytest.mark.parametrize("b", BATCHES)
def test_vector_log_prob_encode_decode(setup, b):
    model, job = setup["vector"], setup["job"]
    x = setup["moons"][:b]
    live = {k: v.numpy() for k, v in model.predict_step(x).items()}
    got = job.result(f"vector_log_prob_{b}")
    for key in ("log_prob", "nll", "bits_per_dim"):
        _rel_close(got[key], live[key])
    z = job.result(f"vector_encode_{b}")["z"]
    _rel_close(z, model.encode(x).numpy())
    decoded = job.result(f"vector_decode_{b}")
    assert set(decoded) == {"x"}
    _rel_close(decoded["x"], model.decode(tf.constant(x)).numpy())


@pytest.mark.parametrize("b", BATCHES)
def test_encode_decode_round_trip(setup, b):
    model, job = setup["glow"], setup["job"]
    x = setup["images"][:b]
    z = job.result(f"glow_encode_{b}")["z"]
    assert z.shape == (b, *model.latent_shape)
    _rel_close(z, model.encode(x).numpy(), atol=1e-4)
    # served decode(served encode(x)) gives back the dequantized data the model scored
    back = model.decode(tf.constant(z)).numpy()
    np.testing.assert_allclose(back, model.preprocess(x, fixed_noise=True).numpy(), atol=1e-4)

    decoded = job.result(f"glow_decode_{b}")
    assert decoded["images"].dtype == np.uint8 and decoded["images"].shape == (b, 8, 8, 1)
    live_x = model.decode(tf.constant(setup["z_glow"][:b]))
    _rel_close(decoded["x"], live_x.numpy(), atol=1e-4)
    np.testing.assert_array_equal(decoded["images"], data_lib.to_uint8(live_x, 5).numpy())


@pytest.mark.parametrize("n", BATCHES)
def test_sample_is_deterministic_and_equals_live(setup, n):
    job = setup["job"]
    for seed in SEEDS:
        got = job.result(f"glow_sample_{n}_{seed}")
        live = serving.sample_stateless(setup["glow"], n, 0.7, seed)
        assert got["images"].dtype == np.uint8 and got["images"].shape == (n, 8, 8, 1)
        np.testing.assert_array_equal(got["images"], live["images"].numpy())
        _rel_close(got["x"], live["x"].numpy())
        vec = job.result(f"vector_sample_{n}_{seed}")
        assert vec["x"].shape == (n, 2)
        _rel_close(vec["x"], serving.sample_stateless(setup["vector"], n, 0.7, seed)["x"].numpy())
    a, b = (job.result(f"glow_sample_{n}_{s}")["images"] for s in SEEDS)
    assert not np.array_equal(a, b)
    # the live sampler is the stateless latent decoded by the model
    z = 0.7 * tf.random.stateless_normal([n, *setup["glow"].latent_shape], seed=[SEEDS[0], 0])
    np.testing.assert_allclose(serving.sample_stateless(setup["glow"], n, 0.7, SEEDS[0])["x"].numpy(),
                               setup["glow"].decode(z).numpy(), atol=1e-5)


def test_wrong_shape_or_dtype_names_the_expected_signature(setup):
    job = setup["job"]
    for call in ("bad_shape_sig", "bad_rank_sig"):
        err = job.error(call)
        assert "expects x: uint8 [batch, 8, 8, 1]" in err, err
    assert "signature log_prob: expects x" in job.error("bad_shape_sig")
    assert "[2 16 16 1]" in job.error("bad_shape_sig")  # the received shape
    assert "signature decode: expects z: float32 [batch, 8, 8, 1]" in job.error("bad_latent_sig")
    assert "signature log_prob: expects x: float32 [batch, 2]" in job.error("bad_vector_sig")
    assert "expects n >= 0" in job.error("bad_n_sig")
    # dtypes are refused by TensorFlow itself, before the graph runs
    assert "signature_wrapper_log_prob" in job.error("bad_dtype_sig")
    assert "was expected to be a uint8 tensor" in job.error("bad_dtype_sig")
    expected_spec = "TensorSpec(shape=(None, 8, 8, 1), dtype=tf.uint8, name='x')"
    assert expected_spec in job.error("bad_dtype_fn")
    assert expected_spec in job.error("bad_shape_fn")


def test_saved_model_cli_show_lists_the_signatures(setup):
    code, out, err = setup["cli"]["show"]
    assert code == 0, err[-3000:]
    for name in ("log_prob", "log_prob_float", "log_prob_image", "sample", "sample_n", "encode", "encode_image",
                 "decode", "serving_default"):
        assert f"signature_def['{name}']" in out
    assert "shape: (-1, 8, 8, 1)" in out and "dtype: DT_UINT8" in out


def test_saved_model_cli_run_executes_log_prob(setup):
    code, out, err = setup["cli"]["run"]
    assert code == 0, err[-3000:]
    assert "Result for output key log_prob:" in out and "Result for output key bits_per_dim:" in out
    text = out.split("Result for output key log_prob:")[1].split("Result for")[0]
    values = np.array(text.replace("[", " ").replace("]", " ").split(), dtype=np.float32)
    _rel_close(values, setup["glow"](setup["images"][:2]).numpy())


def test_xla_compiled_evaluation_gives_the_exported_numbers(setup, tmp_path):
    # one fixed noise pattern: XLA-compiled predict, graph predict and the SavedModel agree
    glow = setup["glow"]
    jit_model = FlowModel.from_config(glow.get_config())
    jit_model.set_weights(glow.get_weights())
    jit_model.compile(jit_compile=True)
    path = serving.export_saved_model(jit_model, str(tmp_path / "xla"), signatures=["log_prob"])
    loaded = tf.saved_model.load(path)
    x = setup["images"][:5]
    got = loaded.signatures["log_prob"](x=tf.constant(x))
    live = jit_model.predict(x, batch_size=5, verbose=0)
    for key in ("log_prob", "bits_per_dim"):
        _rel_close(got[key].numpy(), live[key])
    # and an image scores the same wherever it sits in its batch
    reversed_scores = loaded.signatures["log_prob"](x=tf.constant(x[::-1]))["log_prob"].numpy()[::-1]
    _rel_close(reversed_scores, got["log_prob"].numpy())


def test_export_argument_errors(setup, tmp_path):
    with pytest.raises(ValueError, match="Unknown signatures"):
        serving.export_saved_model(setup["vector"], str(tmp_path / "a"), signatures=["log_prob_float"])
    with pytest.raises(ValueError, match="serving_default"):
        serving.export_saved_model(setup["glow"], str(tmp_path / "b"), signatures=["sample"])
    fresh = FlowModel(GLOW, n_bits=5)
    with pytest.raises(ValueError, match="uninitialised"):
        serving.export_saved_model(fresh, str(tmp_path / "d"))


def _cli_values(out, key):
    text = out.split(f"Result for output key {key}:")[1].split("Result for")[0]
    return np.array(text.replace("[", " ").replace("]", " ").split(), dtype=np.float32)


def test_sample_takes_rows(setup):
    job = setup["job"]
    for name in ("glow", "vector"):
        model = setup[name]
        got = job.result(f"{name}_sample_rows")
        assert got["x"].shape == (len(SAMPLE_ROWS), *model.event_shape)
        for i, row in enumerate(SAMPLE_ROWS):
            # row i is sample_n(1, T_i, seed_i), computed on the live model
            live = serving.sample_stateless(model, 1, row["temperature"], row["seed"])
            _rel_close(got["x"][i], live["x"].numpy()[0], atol=1e-4)
            if name == "glow":
                np.testing.assert_array_equal(got["images"][i], live["images"].numpy()[0])
        # and it is FlowModel.sample's draw: rows 0 and 1 share a seed, so one latent at two temperatures
        _rel_close(got["x"][:2], model.sample(1, [0.7, 1.0], seed=5).numpy()[0], atol=1e-4)
    _rel_close(job.result("glow_sample_rows")["x"][2], setup["glow"].decode(tf.zeros([1, 8, 8, 1])).numpy()[0],
               atol=1e-5)
    assert "expects temperature [batch] and seed [batch] of one length" in job.error("bad_sample_lengths")


@pytest.mark.parametrize("b", BATCHES)
def test_image_bytes_signatures_equal_the_uint8_ones(setup, b):
    job = setup["job"]
    want = job.result(f"glow_log_prob_{b}")
    got = job.result(f"glow_log_prob_image_{b}")
    for key in ("log_prob", "nll", "bits_per_dim"):
        _rel_close(got[key], want[key])
    _rel_close(job.result(f"glow_encode_image_{b}")["z"], setup["glow"].encode(setup["images"][:b]).numpy(), atol=1e-4)


def test_image_bytes_from_a_rest_body_and_other_formats(setup):
    job = setup["job"]
    rest = job.result("glow_log_prob_image_rest")  # {"image_bytes": {"b64": ...}} rows
    _rel_close(rest["log_prob"], job.result("glow_log_prob_3")["log_prob"][:2])
    mixed = job.result("glow_log_prob_image_rgb_jpeg")  # an RGB JPEG (converted to grey) and a PNG
    assert np.all(np.isfinite(mixed["log_prob"]))
    _rel_close(mixed["log_prob"][1], job.result("glow_log_prob_3")["log_prob"][1])
    err = job.error("bad_image_size")
    assert "signature log_prob_image: expects image_bytes: encoded PNG/JPEG/GIF/BMP images of 8x8 pixels" in err
    assert "[16 16 1]" in err


def test_saved_model_cli_runs_rows(setup):
    code, out, err = setup["cli"]["run_sample"]
    assert code == 0, err[-3000:]
    x = _cli_values(out, "x").reshape(3, 8, 8, 1)
    _rel_close(x, setup["job"].result("glow_sample_rows")["x"], atol=1e-4)
    code, out, err = setup["cli"]["run_image"]
    assert code == 0, err[-3000:]
    _rel_close(_cli_values(out, "log_prob"), setup["glow"](setup["images"][:2]).numpy())


def test_versioned_export_for_tf_serving(setup, tmp_path):
    base = tmp_path / "served"
    first = serving.export_saved_model(setup["vector"], base, signatures=["log_prob"], version=1)
    assert first == str(base / "1") and os.path.isfile(base / "1" / "saved_model.pb")
    second = serving.export_saved_model(setup["vector"], base, signatures=["log_prob"], version="next")
    assert second == str(base / "2") and os.path.isfile(base / "2" / "saved_model.pb")
    with pytest.raises(FileExistsError, match="never overwritten"):
        serving.export_saved_model(setup["vector"], base, signatures=["log_prob"], version=2)
    for bad in (0, -1, "2", 1.5, True):
        with pytest.raises(ValueError, match="version must be an int >= 1 or 'next'"):
            serving.export_saved_model(setup["vector"], base, signatures=["log_prob"], version=bad)
    assert sorted(os.listdir(base)) == ["1", "2"]

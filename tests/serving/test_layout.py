"""tfp_glow.serving.layout: the format marker, metadata and TF Serving's version folders; and
SavedModels of format 1 (tests/fixtures/saved_model_format1, written by the export before
tfp_glow.serving) still load, serve their own numbers and match today's model and export."""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfp_glow import serving
from tfp_glow.models import sampling
from tfp_glow.training.conditional import ConditionalFlowModel
from tfp_glow.models import FlowConfig
from tfp_glow.serving import layout
from tfp_glow.training import FlowModel
import support

FIXTURES = str(support.FIXTURES / "saved_model_format1")
CONFIGS = {"glow": FlowConfig("glow", (8, 8, 1), dict(levels=2, steps=1, hidden_channels=4)),
           "conditional": FlowConfig("glow", (8, 8, 1), dict(levels=2, steps=1, hidden_channels=4, num_classes=10))}


def _fixture(name):
    root = os.path.join(FIXTURES, name)
    with open(os.path.join(root, "calls.json")) as f:
        calls = json.load(f)
    with np.load(os.path.join(root, "outputs.npz")) as f:
        arrays = {k: f[k] for k in f.files}
    cases = {cid: ({k.split("/")[2]: v for k, v in arrays.items() if k.startswith(f"{cid}/in/")},
                   {k.split("/")[2]: v for k, v in arrays.items() if k.startswith(f"{cid}/out/")}) for cid in calls}
    return root, calls, cases


def _live(name):
    """Today's model with the fixture's weights."""
    model = (ConditionalFlowModel if name == "conditional" else FlowModel)(CONFIGS[name], n_bits=5)
    model.initialize(np.zeros((2, 8, 8, 1), np.uint8))  # builds every layer; the weights overwrite it
    model.load_weights(os.path.join(FIXTURES, name, "model.weights.h5"))
    return model


def test_format_version_reads_and_refuses():
    assert layout.FORMAT == "tfp_glow.saved_model/2" and layout.format_version({"format": layout.FORMAT}) == 2
    assert layout.format_version({"format": "tfp_glow.saved_model/1"}) == 1
    with pytest.raises(ValueError, match="newer than this tfp_glow knows"):
        layout.format_version({"format": "tfp_glow.saved_model/3"})
    for bad in ({}, {"format": "other/1"}, {"format": "tfp_glow.saved_model/x"}, None):
        with pytest.raises(ValueError, match="not the metadata of a tfp_glow SavedModel"):
            layout.format_version(bad)


def test_versioned_path_and_target(tmp_path):
    assert layout.versioned_path(tmp_path / "new", "next") == str(tmp_path / "new" / "1")
    for d in ("1", "3", "notes"):
        (tmp_path / d).mkdir()
    assert layout.versioned_path(tmp_path, "next") == str(tmp_path / "4")
    assert layout.versioned_path(tmp_path, 2) == str(tmp_path / "2")
    assert layout.target_path(tmp_path, None) == str(tmp_path)
    with pytest.raises(FileExistsError, match="never overwritten"):
        layout.target_path(tmp_path, 3)
    for bad in (0, "2", 1.5, True):
        with pytest.raises(ValueError, match="version must be an int >= 1 or 'next'"):
            layout.versioned_path(tmp_path, bad)


def test_read_metadata_from_a_folder_and_a_loaded_model(tmp_path):
    with pytest.raises(ValueError, match="not a tfp_glow SavedModel"):
        layout.read_metadata(tmp_path)
    info = {"format": "tfp_glow.saved_model/1", "n_bits": 5}
    layout.write_metadata(str(tmp_path), info)
    assert layout.read_metadata(tmp_path) == {**info, "format_version": 1}
    module = tf.Module()
    module.config_json = layout.metadata_variable({"format": layout.FORMAT})
    assert layout.read_metadata(module)["format_version"] == layout.FORMAT_VERSION


@pytest.mark.parametrize("name", ["glow", "conditional"])
def test_a_format_1_saved_model_loads_and_serves_its_numbers(name):
    root, calls, cases = _fixture(name)
    path = os.path.join(root, "saved_model")
    loaded = tf.saved_model.load(path)
    assert layout.read_metadata(path)["format_version"] == 1
    assert layout.read_metadata(loaded)["format_version"] == 1
    for cid, sig in calls.items():
        inputs, want = cases[cid]
        got = loaded.signatures[sig](**{k: tf.constant(v) for k, v in inputs.items()})
        assert sorted(got) == sorted(want), cid
        for k in want:
            np.testing.assert_allclose(got[k].numpy(), want[k], rtol=1e-5, atol=1e-5, err_msg=f"{cid}/{k}")


def test_format_1_numbers_equal_todays_model_and_sampler():
    _, _, cases = _fixture("glow")
    model = _live("glow")
    (x,), out = cases["log_prob"][0].values(), cases["log_prob"][1]
    np.testing.assert_allclose(model(x).numpy(), out["log_prob"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(model.encode(x).numpy(), cases["encode"][1]["z"], atol=1e-4)
    np.testing.assert_allclose(model.decode(cases["decode"][0]["z"]).numpy(), cases["decode"][1]["x"], atol=1e-4)
    # sample_n(3, 0.7, 4) of format 1 is today's shared draw, decoded
    z = sampling.draw_latent(model.latent_shape, 3, 0.7, 4)
    np.testing.assert_allclose(model.decode(z).numpy(), cases["sample_n"][1]["x"], atol=1e-4)
    rows = cases["sample"]
    z = sampling.draw_rows(model.latent_shape, rows[0]["temperature"], rows[0]["seed"])
    np.testing.assert_allclose(model.decode(z).numpy(), rows[1]["x"], atol=1e-4)


@pytest.mark.parametrize("name", ["glow", "conditional"])
def test_todays_export_answers_format_1_calls_alike(name, tmp_path):
    """The same weights exported today: every call a format-1 client made (the conditional
    `sample` with a scalar temperature and seed included) gives the format-1 numbers."""
    _, calls, cases = _fixture(name)
    path = serving.export_saved_model(_live(name), str(tmp_path / "new"))
    assert layout.read_metadata(path)["format_version"] == layout.FORMAT_VERSION
    loaded = tf.saved_model.load(path)
    for cid, sig in calls.items():
        inputs, want = cases[cid]
        got = loaded.signatures[sig](**{k: tf.constant(v) for k, v in inputs.items()})
        for k in want:
            np.testing.assert_allclose(got[k].numpy(), want[k], rtol=1e-5, atol=1e-4, err_msg=f"{cid}/{k}")
    shutil.rmtree(path)

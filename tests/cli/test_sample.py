"""Sample grids labelled with their temperature (PNG title, TensorBoard image), and the CLI's
image-folder options `--grayscale` and `--image-size`."""
import glob
import io
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfp_glow.training import callbacks as cb
from tfp_glow.data import splits
from tfp_glow import data as data_lib
from tfp_glow.models import FlowConfig
from tfp_glow.training import FlowModel
from cli_runner import run_cli
import support

CONFIG = support.ONE_LEVEL_GLOW


def _events(log_dir):
    """`[(tag, step, description, image uint8 [H, W, C])]` of the image summaries under `log_dir`."""
    found = []
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "images":
                    width, height, png = tf.make_ndarray(value.tensor)
                    image = np.asarray(Image.open(io.BytesIO(png)))
                    assert image.shape[:2] == (int(height), int(width))
                    found.append((value.tag, event.step, value.metadata.summary_description, image))
    return found


def test_sample_grid_titles_its_png_and_logs_it_to_tensorboard(tmp_path):
    x = data_lib.load_digits("train")[:64]
    model = FlowModel(CONFIG, n_bits=5)
    model.compile(keras.optimizers.Adam(1e-3), jit_compile=False)
    model.initialize(x)
    grid = cb.SampleGrid(str(tmp_path), n=9, temperature=0.5, every=2, log_dir=str(tmp_path / "logs"))
    grid.set_model(model)
    grid.set_params({"epochs": 3})
    grid.on_train_begin()
    for epoch in range(3):
        grid.on_epoch_end(epoch)
    grid.on_train_end()
    assert [os.path.basename(p) for p in grid.written] == ["samples_epoch002.png", "samples_epoch003.png"]
    files = {}
    for path, epoch in zip(grid.written, (2, 3)):
        with Image.open(path) as img:
            assert img.text["Title"] == f"samples at temperature T=0.5, seed 0 (epoch {epoch})"
            files[epoch] = np.asarray(img)
    events = _events(str(tmp_path / "logs" / "samples"))
    assert [(tag, step) for tag, step, _, _ in events] == [("samples/T=0.5", 2), ("samples/T=0.5", 3)]
    for _, step, description, image in events:
        assert description == f"samples at temperature T=0.5, seed 0 (epoch {step})"
        np.testing.assert_array_equal(image.reshape(files[step].shape), files[step])  # the PNG's pixels


def test_sample_grid_without_log_dir_writes_no_events(tmp_path):
    model = FlowModel(CONFIG, n_bits=5)
    model.initialize(data_lib.load_digits("train")[:64])
    grid = cb.SampleGrid(str(tmp_path), n=4)
    grid.set_model(model)
    grid.on_epoch_end(0)
    assert os.listdir(tmp_path) == ["samples_epoch001.png"]


def _folder(tmp_path):
    """12 RGB images of 6x4 pixels in a folder: `[12, 6, 4, 3]` uint8 and the folder's path."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 6, 4, 3), dtype=np.uint8)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, a in enumerate(x):
        Image.fromarray(a).save(folder / f"{i:02d}.png")
    return x, str(folder)


def test_load_split_passes_grayscale_and_image_size_to_folders(tmp_path):
    x, folder = _folder(tmp_path)
    train, info = splits.load_split(folder, "train", image_size=(4, 2), grayscale=True)
    assert info.shape == (4, 2, 1) and train.shape[1:] == (4, 2, 1)
    luma = x.astype(float) @ np.array([0.299, 0.587, 0.114])
    full, _ = data_lib.get_source(folder, "train", grayscale=True)
    assert np.abs(full[..., 0] - luma).max() <= 0.5 + 1e-9  # rounded BT.601 luma
    with pytest.raises(ValueError, match="image folders only"):
        splits.load_split("digits", "train", grayscale=True)
    with pytest.raises(ValueError, match="image folders only"):
        data_lib.get_source("moons", "train", image_size=(4, 4))


def test_cli_trains_and_evaluates_a_resized_grayscale_folder(tmp_path):
    _, folder = _folder(tmp_path)
    run_dir = str(tmp_path / "run")
    rc, out, err = run_cli(["train", "--data", folder, "--image-size", "4", "4", "--grayscale", "--epochs", "1",
                         "--levels", "1", "--steps", "1", "--hidden", "8", "--batch-size", "4", "--no-xla",
                         "--run-dir", run_dir, "--temperature", "0.6"])
    assert rc == 0, out + err
    assert "(4x4x1, 8 bits)" in out
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["image_size"] == [4, 4] and config["grayscale"] is True
    with Image.open(os.path.join(run_dir, "samples_final.png")) as img:
        assert img.mode == "L" and img.text["Title"] == "samples at temperature T=0.6, seed 0"
    # evaluate reads the folder as the run did (without the options it would be 6x4 RGB)
    rc, out, err = run_cli(["evaluate", run_dir, "--no-xla"])
    assert rc == 0, out + err
    assert "test bits/dim:" in out
    # the options are refused where they do not apply, in one error line
    rc, out, err = run_cli(["train", "--data", "moons", "--grayscale", "--run-dir", str(tmp_path / "r2")])
    assert rc == 2 and err.startswith("error:") and "image folders only" in err and len(err.splitlines()) == 1
    rc, out, err = run_cli(["train", "--image-size", "0", "4"])
    assert rc == 2 and "positive" in err

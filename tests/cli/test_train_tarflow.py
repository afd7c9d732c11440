"""`tfp-glow train --flow tarflow` and `sample --guidance`: a tiny TarFlow trains, evaluates,
resumes with its noise, samples with guidance and exports, through the command line."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from cli_runner import run_cli

TINY = ["--flow", "tarflow", "--patch-size", "2", "--hidden", "16", "--blocks", "2", "--layers-per-block", "1",
        "--no-xla", "--steps-per-epoch", "5", "--verbose", "0"]


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("tarflow") / "run")
    rc, out, err = run_cli(["train", "--conditional", "--epochs", "1", *TINY, "--noise-sigma", "0.05",
                            "--run-dir", run_dir])
    assert rc == 0, out + err
    return run_dir


def test_train_records_a_tarflow_with_its_options_and_noise(conditional_run):
    config = json.load(open(os.path.join(conditional_run, "config.json")))
    assert config["flow_config"]["flow"] == "tarflow"
    assert {k: config["flow_config"]["kwargs"][k] for k in ("patch_size", "width", "blocks", "layers_per_block")} == \
        {"patch_size": 2, "width": 16, "blocks": 2, "layers_per_block": 1}
    assert config["noise_sigma"] == 0.05
    rc, out, err = run_cli(["evaluate", conditional_run])
    assert rc == 0 and "bits/dim" in out, out + err


def test_resume_keeps_the_runs_noise_and_refuses_another(conditional_run):
    rc, out, err = run_cli(["train", "--resume", "--run-dir", conditional_run, "--conditional", "--epochs", "2",
                            "--noise-sigma", "0.2", "--verbose", "0"])
    assert rc != 0 and "--noise-sigma 0.05" in out + err
    rc, out, err = run_cli(["train", "--resume", "--run-dir", conditional_run, "--conditional", "--epochs", "2",
                            "--verbose", "0", "--no-xla", "--steps-per-epoch", "5"])
    assert rc == 0, out + err
    assert json.load(open(os.path.join(conditional_run, "config.json")))["noise_sigma"] == 0.05


def test_sample_with_guidance_writes_its_own_grid(conditional_run):
    rc, out, err = run_cli(["sample", conditional_run, "--by-class", "--n", "2", "--guidance", "1.5"])
    assert rc == 0, out + err
    path = os.path.join(conditional_run, "samples_by_class_guidance1.5_t0.7_seed0.png")
    assert os.path.exists(path) and np.asarray(Image.open(path)).size > 0
    rc, out, err = run_cli(["sample", conditional_run, "--by-class", "--n", "2", "--guidance", "-1"])
    assert rc != 0


def test_guidance_and_tarflow_options_where_they_do_not_apply(tmp_path):
    rc, out, err = run_cli(["train", "--epochs", "1", "--levels", "1", "--steps", "1", "--hidden", "8",
                            "--patch-size", "2", "--run-dir", str(tmp_path / "g"), "--verbose", "0"])
    assert rc != 0 and "--patch-size does not apply to --flow glow" in out + err
    rc, out, err = run_cli(["train", "--epochs", "1", *TINY, "--steps", "3", "--run-dir", str(tmp_path / "t")])
    assert rc != 0 and "--steps does not apply to --flow tarflow" in out + err
    rc, out, err = run_cli(["train", "--data", "moons", "--flow", "tarflow", "--run-dir", str(tmp_path / "v")])
    assert rc != 0 and "tarflow works on images" in out + err
    run_dir = str(tmp_path / "plain")
    rc, out, err = run_cli(["train", "--epochs", "1", *TINY, "--run-dir", run_dir])
    assert rc == 0, out + err
    rc, out, err = run_cli(["sample", run_dir, "--guidance", "1.0"])
    assert rc != 0 and "class-conditional" in out + err


def test_a_conditional_tarflow_drops_a_tenth_of_its_labels_by_default_and_keeps_it(conditional_run):
    from tfp_glow import recipes, runs
    config = json.load(open(os.path.join(conditional_run, "config.json")))
    assert config["label_dropout"] == recipes.LABEL_DROPOUT == 0.1  # the reference's drop_label
    assert runs.load_run(conditional_run).label_dropout == 0.1
    rc, out, err = run_cli(["train", "--resume", "--run-dir", conditional_run, "--conditional", "--epochs", "2",
                            "--label-dropout", "0.3", "--verbose", "0"])
    assert rc != 0 and "--label-dropout 0.1" in out + err


def test_label_dropout_is_refused_where_it_does_not_apply(tmp_path):
    rc, out, err = run_cli(["train", "--epochs", "1", *TINY, "--label-dropout", "0.2",
                            "--run-dir", str(tmp_path / "u")])
    assert rc != 0 and "--label-dropout applies to class-conditional runs (--conditional)" in out + err
    rc, out, err = run_cli(["train", "--conditional", "--epochs", "1", *TINY, "--label-dropout", "1.5",
                            "--run-dir", str(tmp_path / "c")])
    assert rc != 0 and "label_dropout must be a float in [0, 1)" in out + err
    assert not os.path.exists(tmp_path / "c" / "config.json")

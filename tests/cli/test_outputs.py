"""No silent overwrite (issue 20): distinct default names for distinct outputs, an existing file
or SavedModel refused (one line, exit 2, nothing written) unless `--overwrite`, and one default
run directory per recipe."""
import os

import pytest
import tensorflow as tf

from tfp_glow import recipes, runs
from cli_runner import run_cli
from user_data import TINY, in_folder, make_npz

FEW = ["--steps-per-epoch", "3"]  # a few steps of the digits, not a pass over them


def _refused(argv):
    rc, out, err = run_cli(argv)
    assert rc == 2, (argv, out, err)
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "--overwrite" in lines[0] and "already" in lines[0], err
    return lines[0]


def _ok(argv):
    rc, out, err = run_cli(argv)
    assert rc == 0, (argv, out, err)
    return out


def _stamp(path):
    """What a write would change: the bytes and the modification time of a file."""
    with open(path, "rb") as f:
        return f.read(), os.stat(path).st_mtime_ns


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """`tfp-glow train` and `tfp-glow train --conditional` into their default run directories."""
    root = tmp_path_factory.mktemp("project")
    with in_folder(root):
        _ok(["train", *TINY, *FEW])
        _ok(["train", "--conditional", *TINY, *FEW])
    return root


def test_default_run_dirs_name_the_recipe_and_keep_the_plain_name():
    assert recipes.default_run_dir("glow", "digits") == os.path.join("runs", "glow-digits")
    assert recipes.default_run_dir("glow", "digits", "uniform") == os.path.join("runs", "glow-digits")
    assert recipes.default_run_dir("glow", "digits", "variational") == os.path.join("runs", "glow-digits-variational")
    assert recipes.default_run_dir("glow", "digits", conditional=True) == os.path.join("runs", "glow-digits-conditional")
    assert (recipes.default_run_dir("realnvp", "a/faces.npz", "variational", conditional=True)
            == os.path.join("runs", "realnvp-faces-variational-conditional"))


def test_each_recipe_trains_into_its_own_default_run_dir_and_resumes_from_it(project):
    with in_folder(project):  # the README's commands one after the other, on a tiny Glow
        _ok(["train", "--dequantization", "variational", *TINY, *FEW])
        deq = {name: runs.load_run_config(os.path.join("runs", name)).get("dequantization")
               for name in ("glow-digits", "glow-digits-variational")}
        assert deq == {"glow-digits": "uniform", "glow-digits-variational": "variational"}
        assert runs.load_run_config(os.path.join("runs", "glow-digits-conditional"))["conditional"] is True
        out = _ok(["train", "--resume", "--dequantization", "variational", "--epochs", "2", "--no-xla",
                   "--verbose", "0"])
        assert "resuming from epoch 1" in out and os.path.join("runs", "glow-digits-variational") in out


def test_sample_grids_have_names_of_their_own_and_are_never_replaced_silently(project):
    run_dir = str(project / "runs" / "glow-digits-conditional")
    outs = {}
    for extra in ([], ["--by-class", "--n", "2"], ["--labels", "1,2", "--n", "2"]):
        before = set(os.listdir(run_dir))
        _ok(["sample", run_dir, *extra])
        (new,) = set(os.listdir(run_dir)) - before  # one new file each time, none overwritten
        outs[tuple(extra)] = new
    assert outs[()] == "samples_t0.7_seed0.png"
    kept = _stamp(os.path.join(run_dir, outs[()]))
    assert "samples_t0.7_seed0.png" in _refused(["sample", run_dir])
    assert _stamp(os.path.join(run_dir, outs[()])) == kept
    out = os.path.join(run_dir, "mine.png")
    _ok(["sample", run_dir, "--n", "4", "--out", out])
    first = _stamp(out)
    _refused(["sample", run_dir, "--n", "4", "--seed", "1", "--out", out])
    assert _stamp(out) == first
    _ok(["sample", run_dir, "--n", "4", "--seed", "1", "--out", out, "--overwrite"])
    assert _stamp(out)[0] != first[0]


def test_score_with_and_without_ood_write_different_files_and_refuse_to_replace_them(project, tmp_path):
    run_dir = str(project / "runs" / "glow-digits")
    ood = make_npz(str(tmp_path / "noise.npz"), n=20, labels=False)
    _ok(["score", run_dir, "digits"])
    _ok(["score", run_dir, "digits", "--ood", ood])
    for name in ("score_digits.csv", "score_digits.png", "score_digits_vs_noise.csv", "score_digits_vs_noise.png"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    kept = {n: _stamp(os.path.join(run_dir, n)) for n in os.listdir(run_dir) if n.startswith("score_")}
    _refused(["score", run_dir, "digits"])
    _refused(["score", run_dir, "digits", "--ood", ood])
    assert {n: _stamp(os.path.join(run_dir, n)) for n in os.listdir(run_dir) if n.startswith("score_")} == kept
    _ok(["score", run_dir, "digits", "--overwrite"])


def test_export_refuses_an_existing_savedmodel_and_replaces_it_whole_with_overwrite(project, tmp_path):
    run_dir, path = str(project / "runs" / "glow-digits"), str(tmp_path / "exported")
    _ok(["export", run_dir, path])
    kept = _stamp(os.path.join(path, "saved_model.pb"))
    _refused(["export", run_dir, path])
    assert _stamp(os.path.join(path, "saved_model.pb")) == kept
    _ok(["export", run_dir, path, "--overwrite"])
    assert _stamp(os.path.join(path, "saved_model.pb"))[1] != kept[1]
    assert sorted(os.listdir(tmp_path)) == ["exported"]  # no temporary folder left beside it
    assert "log_prob" in tf.saved_model.load(path).signatures


def test_interpolate_refuses_to_replace_and_names_its_method(project):
    run_dir = str(project / "runs" / "glow-digits")
    _ok(["interpolate", run_dir])
    _refused(["interpolate", run_dir])
    _ok(["interpolate", run_dir, "--method", "linear"])
    assert {"interpolate_0_1.png", "interpolate_0_1_linear.png"} <= set(os.listdir(run_dir))

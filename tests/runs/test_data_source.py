"""Runs that travel (issue 20): a run trained on a user's `.npz` file or image folder works from
any working folder, after the project moved, and with `--data` after its data moved; an old run
directory (config.json without the new keys) still loads."""
import json
import os
import re
import shutil

import pytest

from tfp_glow import runs
from tfp_glow.data import DataInfo, labeled
from cli_runner import run_cli
from user_data import TINY, in_folder, make_folder, make_npz


def _figure(out, what="test bits/dim"):
    found = re.findall(re.escape(what) + r": (-?\d+\.\d{4})", out)
    assert found, out
    return float(found[-1])


def _one_error(err):
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _config(run_dir):
    with open(os.path.join(run_dir, "config.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder with mydata.npz and myimgs/, and a run on each trained from inside it
    with relative paths, as a user types them."""
    root = tmp_path_factory.mktemp("project")
    with in_folder(root):
        make_npz("mydata.npz")
        make_folder("myimgs")
        trained = {}
        for kind, data in (("npz", ["--data", "mydata.npz"]), ("folder", ["--data", "myimgs", "--grayscale"])):
            rc, out, err = run_cli(["train", *data, *TINY, "--run-dir", os.path.join("runs", kind)])
            assert rc == 0, out + err
            trained[kind] = _figure(out)
    return {"root": str(root), "bpd": trained, "npz": str(root / "mydata.npz"), "folder": str(root / "myimgs"),
            "runs": {k: str(root / "runs" / k) for k in ("npz", "folder")}}


def test_config_json_records_the_data_resolved(project):
    cfg = _config(project["runs"]["npz"])
    assert cfg["data"] == os.path.abspath(project["npz"])
    assert cfg["data_relative"] == os.path.join("..", "..", "mydata.npz")
    assert cfg["data_shape"] == [8, 8, 1] and cfg["data_bits"] == 8
    cfg = _config(project["runs"]["folder"])
    assert cfg["data"] == os.path.abspath(project["folder"]) and cfg["data_relative"] == os.path.join("..", "..", "myimgs")
    # built-in sources stay names, with nothing relative
    for name in ("digits", "moons", "tfds:mnist", "mnist"):
        assert runs.data_entries(name, "runs/x") == {"data": name}


@pytest.mark.parametrize("kind", ["npz", "folder"])
def test_every_command_runs_from_another_folder(project, kind, tmp_path):
    run_dir, other = project["runs"][kind], tmp_path / "elsewhere"
    own = project[kind]
    ood = project["folder" if kind == "npz" else "npz"]
    with in_folder(other):
        rc, out, err = run_cli(["evaluate", run_dir, "--no-xla"])
        assert rc == 0, err
        assert _figure(out) == project["bpd"][kind]  # the figure train printed
        rc, out, err = run_cli(["score", run_dir, own, "--ood", ood, "--resize", "--batch", "2", "--out", "s"])
        assert rc == 0, err
        assert "AUROC bits_per_dim" in out and os.path.isfile("s.csv")
        rc, out, err = run_cli(["interpolate", run_dir, "--out", "i.png"])
        assert rc == 0 and os.path.isfile("i.png"), err
        if kind == "npz":  # the .npz has labels: a class direction that has test examples to move
            test_labels = labeled.load_labeled_split(own, "test")[1]
            attribute = "1" if 0 in test_labels else "0"
            rc, out, err = run_cli(["manipulate", run_dir, "--attribute", attribute, "--n", "2", "--out", "m.png"])
            assert rc == 0 and os.path.isfile("m.png"), err
        rc, out, err = run_cli(["sample", run_dir, "--n", "4", "--out", "x.png"])
        assert rc == 0 and os.path.isfile("x.png"), err
        rc, out, err = run_cli(["export", run_dir, "exported"])
        assert rc == 0 and os.path.isfile(os.path.join("exported", "saved_model.pb")), err
    copy = str(tmp_path / "copy")  # a copy, so the module's run stays at one epoch
    shutil.copytree(run_dir, copy)
    with in_folder(other):
        rc, out, err = run_cli(["train", "--resume", "--run-dir", copy, "--epochs", "2", "--no-xla", "--verbose", "0"])
        assert rc == 0, out + err
        assert "resuming from epoch 1" in out and os.path.isfile(os.path.join(copy, "checkpoints", "ckpt-2.index"))


def test_a_moved_project_finds_its_data_next_to_the_run_and_moved_data_takes_data(tmp_path):
    before, after, other = tmp_path / "before", tmp_path / "after", tmp_path / "elsewhere"
    with in_folder(before):
        make_npz("data/mydata.npz")
        rc, out, err = run_cli(["train", "--data", "data/mydata.npz", *TINY, "--run-dir", "runs/r"])
        assert rc == 0, out + err
        bpd = _figure(out)
    os.rename(before, after)  # the run and its data moved together: found relative to the run
    run_dir = str(after / "runs" / "r")
    with in_folder(other):
        rc, out, err = run_cli(["evaluate", run_dir, "--no-xla"])
        assert rc == 0, err
        assert _figure(out) == bpd

    moved = str(tmp_path / "moved.npz")  # now the data alone moves: one line that names --data
    os.rename(after / "data" / "mydata.npz", moved)
    with in_folder(other):
        for argv in (["evaluate", run_dir, "--no-xla"], ["score", run_dir, moved, "--out", "s"],
                     ["interpolate", run_dir, "--out", "i.png"],
                     ["train", "--resume", "--run-dir", run_dir, "--epochs", "2", "--no-xla"]):
            rc, out, err = run_cli(argv)
            assert rc == 2, (argv, out, err)
            line = _one_error(err)
            assert "not found" in line and "--data" in line and "unknown data source" not in line, line
        assert not os.path.exists("s.csv") and not os.path.exists("i.png")
        rc, out, err = run_cli(["evaluate", run_dir, "--no-xla", "--data", moved])
        assert rc == 0, err
        assert _figure(out) == bpd
        rc, out, err = run_cli(["score", run_dir, moved, "--data", moved, "--out", "s"])
        assert rc == 0 and os.path.isfile("s.csv"), err
        wrong = make_npz("wrong.npz", channels=3)  # another shape is refused, in one line
        for argv in (["evaluate", run_dir, "--data", wrong], ["score", run_dir, moved, "--data", wrong],
                     ["interpolate", run_dir, "--data", wrong],
                     ["train", "--resume", "--run-dir", run_dir, "--epochs", "2", "--data", wrong]):
            rc, out, err = run_cli(argv)
            assert rc == 2 and "[8, 8, 3]" in _one_error(err) and "[8, 8, 1]" in _one_error(err), (argv, err)
        rc, out, err = run_cli(["train", "--resume", "--run-dir", run_dir, "--epochs", "2", "--data", moved,
                                "--no-xla", "--verbose", "0"])
        assert rc == 0, out + err
        assert "resuming from epoch 1" in out
    assert _config(run_dir)["data"] == moved  # the resumed run records where its data is now
    with in_folder(tmp_path / "third"):
        rc, out, err = run_cli(["evaluate", run_dir, "--no-xla"])
        assert rc == 0, err


def test_resume_keeps_data_that_did_not_move(project, tmp_path):
    copy = str(tmp_path / "copy")
    shutil.copytree(project["runs"]["npz"], copy)
    other = make_npz(str(tmp_path / "other.npz"), seed=5)
    rc, out, err = run_cli(["train", "--resume", "--run-dir", copy, "--epochs", "2", "--data", other])
    assert rc == 2 and "keeps its data" in _one_error(err)


@pytest.mark.parametrize("kind", ["npz", "folder"])
def test_an_old_run_dir_without_the_new_keys_still_loads(project, kind, tmp_path):
    old = str(tmp_path / "old")
    shutil.copytree(project["runs"][kind], old)
    cfg = _config(old)
    cfg["data"] = os.path.basename(project[kind])  # as typed, relative to the project folder
    for key in ("data_relative", "data_shape", "data_bits"):
        del cfg[key]
    with open(os.path.join(old, "config.json"), "w") as f:
        json.dump(cfg, f)
    with in_folder(project["root"]):  # where it was trained: as before
        rc, out, err = run_cli(["evaluate", old, "--no-xla"])
        assert rc == 0, err
        assert _figure(out) == project["bpd"][kind]
    with in_folder(tmp_path / "elsewhere"):  # elsewhere: the cause, and what to do
        rc, out, err = run_cli(["evaluate", old, "--no-xla"])
        assert rc == 2
        line = _one_error(err)
        assert "not found" in line and "--data" in line and "unknown data source" not in line, line
        rc, out, err = run_cli(["evaluate", old, "--no-xla", "--data", project[kind]])
        assert rc == 0, err
        assert _figure(out) == project["bpd"][kind]


def test_data_of_another_bit_depth_is_refused():
    config = {"flow_config": {"event_shape": [8, 8, 1]}, "data_bits": 8}
    runs.check_data_matches(config, DataInfo("image", (8, 8, 1), 8, 10), "same.npz")
    with pytest.raises(runs.RunError, match="16-bit.*8-bit"):
        runs.check_data_matches(config, DataInfo("image", (8, 8, 1), 16, 10), "deep.npz")
    with pytest.raises(runs.RunError, match=r"\[4, 4, 1\].*\[8, 8, 1\]"):
        runs.check_data_matches(config, DataInfo("image", (4, 4, 1), 8, 10), "small.npz")
    # a run recorded before data_bits existed is checked on its shape only
    runs.check_data_matches({"flow_config": {"event_shape": [8, 8, 1]}}, DataInfo("image", (8, 8, 1), 16, 1), "x")

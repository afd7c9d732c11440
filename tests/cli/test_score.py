"""`tfp-glow score` on small splits (issue 20): it works for any split size of at least one
example, skipping only the typicality test on batches (with a note) when a set is smaller than a
batch, and when it refuses it writes nothing."""
import csv
import os
import re

import numpy as np
import pytest

from cli_runner import run_cli
from user_data import TINY, in_folder, make_folder, make_npz


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """An RGB run on 12 images (1 validation, 1 test example) and a folder of 10 RGB images
    (1 test image): the splits of the issue's `score RUN mydata.npz --ood myimgs`."""
    root = tmp_path_factory.mktemp("small")
    with in_folder(root):
        make_npz("mydata.npz", n=12, channels=3, labels=False)
        make_folder("myimgs", n=10, channels=3)
        rc, out, err = run_cli(["train", "--data", "mydata.npz", *TINY, "--run-dir", "run"])
        assert rc == 0, out + err
    return root


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_score_with_ood_on_one_example_per_split_reports_and_writes_everything(small):
    with in_folder(small):
        rc, out, err = run_cli(["score", "run", "mydata.npz", "--ood", "myimgs"])
        assert rc == 0, out + err
        for score in ("bits_per_dim", "typicality", "complexity_corrected"):
            value = float(re.search(rf"AUROC {score}: (\d\.\d{{4}})", out).group(1))
            assert value in (0.0, 0.5, 1.0)  # one example against one: a win, a tie or a loss
        assert "typicality test on batches of 8 is skipped" in out and "--batch" in out
        prefix = os.path.join("run", "score_mydata_vs_myimgs")
        rows = _rows(prefix + ".csv")
        assert [r["set"] for r in rows] == ["mydata.npz", "myimgs"]
        assert os.path.getsize(prefix + ".png") > 0


def test_batches_of_one_run_the_typicality_test_on_the_same_small_splits(small):
    with in_folder(small):
        rc, out, err = run_cli(["score", "run", "mydata.npz", "--ood", "myimgs", "--batch", "1", "--out", "b1"])
        assert rc == 0, out + err
        auroc = float(re.search(r"AUROC typicality on batches of 1: (\d\.\d{4})", out).group(1))
        # a batch of one is its example: the batch AUROC equals the per-example typicality AUROC
        assert auroc == float(re.search(r"AUROC typicality: (\d\.\d{4})", out).group(1))
        assert "flags" in out and np.isfinite(auroc)


def test_a_refused_score_writes_nothing(small, tmp_path):
    empty = str(tmp_path / "empty.npz")
    np.savez(empty, train=np.zeros((4, 8, 8, 3), np.uint8), test=np.zeros((0, 8, 8, 3), np.uint8))
    with in_folder(small):
        before = sorted(os.listdir("run"))
        rc, out, err = run_cli(["score", "run", "mydata.npz", "--ood", empty, "--out", str(tmp_path / "refused")])
        assert rc == 2, out + err
        lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and "empty" in lines[0], err
        assert not [p for p in os.listdir(tmp_path) if p.startswith("refused")]
        assert sorted(os.listdir("run")) == before

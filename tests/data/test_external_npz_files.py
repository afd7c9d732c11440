"""A file that is not a readable `.npz` gets one clear line, and never the advice to unpickle it."""
import pickle
import zipfile

import numpy as np
import pytest

import tfp_glow as tg


def _no_pickle_advice(excinfo):
    text = str(excinfo.value)
    assert "allow_pickle" not in text and "pickle.load" not in text and "trust" not in text
    assert "\n" not in text


@pytest.mark.parametrize("content", [b"this is not a zip file at all" * 10, pickle.dumps({"x": [1, 2, 3]}), b""],
                         ids=["text", "pickle", "empty"])
def test_a_file_that_is_not_an_npz_is_refused_in_one_line(tmp_path, content):
    path = tmp_path / "garbage.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="is not an .npz file") as excinfo:
        tg.data.load_npz(path)
    _no_pickle_advice(excinfo)


def test_an_npy_file_named_npz_is_refused(tmp_path):
    path = tmp_path / "images.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros((2, 4, 4, 1), np.uint8))
    with pytest.raises(ValueError, match="np.savez") as excinfo:
        tg.data.load_npz(path)
    _no_pickle_advice(excinfo)


def test_an_object_array_is_not_unpickled(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(ValueError, match="object array") as excinfo:
        tg.data.load_npz(path)
    _no_pickle_advice(excinfo)


def test_a_truncated_archive_is_refused(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, x=np.zeros((3, 4, 4, 1), np.uint8))
    data = good.read_bytes()
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(bad, "w") as z:  # a zip whose member is not an .npy array
        z.writestr("x.npy", data[:20])
    with pytest.raises(ValueError, match="bad.npz") as excinfo:
        tg.data.load_npz(bad)
    _no_pickle_advice(excinfo)


def test_a_good_npz_still_loads(tmp_path):
    x = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4, 1)
    np.savez(tmp_path / "ok.npz", x=x)
    np.testing.assert_array_equal(tg.data.load_npz(tmp_path / "ok.npz"), x)


def test_the_command_line_refuses_a_garbage_npz_in_one_line(tmp_path):
    """`tfp-glow train --data garbage.npz`: one `error:` line, exit code 2, no pickle advice."""
    import subprocess
    import sys

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip" * 20)
    for extra in ([], ["--conditional"]):
        proc = subprocess.run([sys.executable, "-m", "tfp_glow.cli", "train", "--data", str(garbage), "--run-dir",
                               str(tmp_path / "run"), *extra], capture_output=True, text=True, timeout=300)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert proc.returncode != 0 and len(errors) == 1, proc.stderr
        assert "is not an .npz file" in errors[0] and "pickle" not in proc.stderr, proc.stderr

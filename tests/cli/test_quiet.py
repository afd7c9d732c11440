"""No TensorFlow start-up line on any `tfp-glow` command unless `--debug`, and every `--help`
answers without importing TensorFlow (tfp_glow/cli/quiet.py)."""
import os
import re
import subprocess
import sys

import pytest

from tfp_glow.cli import quiet

# The lines TensorFlow 2.21 prints on a machine without a GPU (issue 20), by their text.
STARTUP = re.compile(r"absl::InitializeLog|oneDNN custom operations|cuda drivers|cuInit|cudart|cuda_platform")
COMMANDS = ("train", "sample", "evaluate", "export", "interpolate", "manipulate", "score", "bench")

ALL_HELPS = """
import contextlib, io, sys
import tfp_glow.cli
for argv in [["--help"]] + [[c, "--help"] for c in sys.argv[1:]] + [["bench", "--quality", "--help"]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            tfp_glow.cli.main(argv)
        except SystemExit as e:
            assert e.code in (0, None), (argv, e.code)
    assert "usage: tfp-glow" in out.getvalue(), (argv, out.getvalue()[:200])
heavy = sorted(m for m in ("tensorflow", "keras", "tensorflow_probability", "torch") if m in sys.modules)
assert not heavy, heavy
print("helps ok")
"""


def _env():
    env = dict(os.environ)
    for key in ("TF_CPP_MIN_LOG_LEVEL", "TFP_GLOW_DEBUG"):  # the defaults, as a user has them
        env.pop(key, None)
    return env


def _tfp_glow(argv, cwd, timeout=300):
    return subprocess.run([sys.executable, "-m", "tfp_glow.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=_env())


def test_every_help_answers_without_tensorflow():
    done = subprocess.run([sys.executable, "-c", ALL_HELPS, *COMMANDS], capture_output=True, text=True,
                          timeout=120, env=_env())
    assert done.returncode == 0, done.stderr
    assert "helps ok" in done.stdout and not STARTUP.search(done.stderr), done.stderr


def test_a_tiny_train_prints_no_tensorflow_line_and_debug_shows_them(tmp_path):
    run_dir = str(tmp_path / "run")
    done = _tfp_glow(["train", "--levels", "1", "--steps", "1", "--hidden", "4", "--epochs", "1",
                      "--steps-per-epoch", "2", "--n-samples", "4", "--no-xla", "--run-dir", run_dir], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test bits/dim" in done.stdout
    assert not STARTUP.search(done.stderr), done.stderr
    # --debug: everything TensorFlow prints, as before (here on a command that fails early)
    debug = _tfp_glow(["--debug", "evaluate", str(tmp_path / "no-such-run")], tmp_path)
    assert debug.returncode == 2 and "does not exist" in debug.stderr
    assert STARTUP.search(debug.stderr), debug.stderr


SCRIPT_WITH_NOISE = """
import os, sys
from tfp_glow.cli import quiet
with quiet.quiet_stderr():
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
    os.write(2, b"I0000 00:00:1.2 1 port.cc:153] oneDNN custom operations are on. You may see ...\\n")
    os.write(2, b"E0000 00:00:1.2 1 some_kernel.cc:9] a real error\\n")
    print("a Python warning", file=sys.stderr)
    os.write(1, b"stdout untouched\\n")
print("after", file=sys.stderr)
"""


def test_quiet_stderr_replays_every_line_that_is_not_a_startup_line():
    done = subprocess.run([sys.executable, "-c", SCRIPT_WITH_NOISE], capture_output=True, text=True, timeout=60,
                          env=_env())
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["E0000 00:00:1.2 1 some_kernel.cc:9] a real error", "a Python warning",
                                        "after"]
    assert done.stdout == "stdout untouched\n"


@pytest.mark.parametrize("line, known", [
    ("I0000 00:00:1796314456.477106   18959 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
     "GPU will not be used.", True),
    ("E0000 00:00:1796314475.924011   19081 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error", True),
    ("E0000 00:00:1 2 op_kernel.cc:1] OP_REQUIRES failed: out of memory", False),
    ("Traceback (most recent call last):", False),
])
def test_only_known_startup_lines_are_held_back(line, known):
    assert quiet.is_startup_line(line + "\n") is known

"""A quiet TensorFlow start-up for the command line: `import_tensorflow(debug)`.

TensorFlow's C++ runtime writes a few lines to file descriptor 2 while it loads, before absl
logging is initialised, so `TF_CPP_MIN_LOG_LEVEL` cannot hide them: absl's "All log messages
before absl::InitializeLog()", oneDNN's "custom operations are on", cudart's "Could not find
cuda drivers" and, once the devices are listed, "failed call to cuInit". `import_tensorflow`
imports TensorFlow, TensorFlow Probability and Keras and lists the devices with fd 2 pointed
at a temporary file, then restores it and writes back every line that is not one of those
known start-up lines, so a real error is never swallowed. `--debug` (or TFP_GLOW_DEBUG=1)
shows everything, as TensorFlow prints it.

Python API users: `import tfp_glow` leaves fd 2 alone (a library that redirects its host's
stderr would surprise); it only sets `TF_CPP_MIN_LOG_LEVEL=2` unless set. A script that wants
the CLI's quiet start-up calls `tfp_glow.cli.quiet.import_tensorflow()` before its own
`import tensorflow`. Standard library only.
"""
import contextlib
import os
import re
import sys
import tempfile

__all__ = ["import_tensorflow", "is_startup_line", "quiet_stderr"]

# The start-up chatter of TensorFlow's C++ runtime on a machine without a GPU (or without
# TensorRT), matched by message text so that any other line is passed on.
_STARTUP = re.compile("|".join((
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    r"\] oneDNN custom operations are on\.",
    r"\] Could not find cuda drivers on your machine, GPU will not be used\.",
    r"\] failed call to cuInit: ",
    r"\] Unable to register cu(DNN|FFT|BLAS) factory: ",
    r"\] computation placer already registered\.",
    r"\] This TensorFlow binary is optimized to use available CPU instructions",
    r"\] To enable the following instructions: .* rebuild TensorFlow",
    r"TF-TRT Warning: Could not find TensorRT",
)))


def is_startup_line(line):
    """Whether `line` is one of TensorFlow's known start-up messages (see the module doc)."""
    return bool(_STARTUP.search(line.rstrip("\r\n")))


@contextlib.contextmanager
def quiet_stderr():
    """Points fd 2 at a temporary file; on exit, writes back the lines that are not start-up lines.

    A file, not a pipe: a pipe would block a writer once its buffer is full.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            rest = "".join(line for line in text.splitlines(keepends=True) if not is_startup_line(line))
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()


def import_tensorflow(debug=False):
    """Imports TensorFlow (and TFP, Keras) and initialises its devices, without start-up lines.

    Args:
      debug: show every line TensorFlow writes (no redirection).

    Returns:
      True if this call imported TensorFlow, False if it was imported already (then nothing is
      done: the lines, if any, were printed when it loaded).
    """
    if "tensorflow" in sys.modules:
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with contextlib.nullcontext() if debug else quiet_stderr():
        import tensorflow as tf
        tf.config.list_physical_devices()  # cuInit runs here: its line falls inside the redirection
        import keras  # noqa: F401
        import tensorflow_probability  # noqa: F401
    if not debug:
        tf.get_logger().setLevel("ERROR")  # TensorFlow's Python warnings (retracing, ...)
    return True

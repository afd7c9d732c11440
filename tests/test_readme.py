"""The README's code example runs as printed, and its commands match CI."""
import pathlib
import re

import tensorflow as tf

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs():
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert tuple(scope["samples"].shape) == (4, 8, 8, 1)
    assert scope["model"].is_initialized and bool(tf.math.is_finite(scope["loss"]))


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one():
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(), re.S).group(1).strip().splitlines()
    assert first_block[0] == 'pip install ".[all]" && tfp-glow train'
    assert "pytest" in first_block[1]
    ci = (README.parent / ".ci" / "run").read_text()
    assert first_block[1] in ci

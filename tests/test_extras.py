"""The lean core install: setup.py's requirements and extras, the digits that ship with the
package, the numpy LU that replaced scipy's, and the clear error of a missing extra.

Missing packages are simulated in a subprocess with `sys.modules[name] = None`, which makes
`import name` fail exactly as if it were not installed.
"""
import ast
import fnmatch
import io
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.linalg
from PIL import Image
from sklearn import datasets as sk_datasets

from tfp_glow import extras, plots
from tfp_glow.bijectors.conv1x1 import lu_decompose, random_rotation
from tfp_glow.data import sources

ROOT = pathlib.Path(__file__).resolve().parent.parent
OPTIONAL = ("sklearn", "scipy", "matplotlib", "PIL", "tensorflow_datasets", "tensorboard", "torch", "normflows")


def _setup_kwargs():
    """The keyword arguments setup.py passes to `setup()`, read without running setuptools."""
    captured = {}
    fake = type(sys)("setuptools")
    fake.setup = lambda **kw: captured.update(kw)
    fake.find_packages = lambda **kw: []
    saved, cwd = sys.modules.get("setuptools"), os.getcwd()
    sys.modules["setuptools"] = fake
    try:
        os.chdir(ROOT)
        exec(compile((ROOT / "setup.py").read_text(), "setup.py", "exec"), {"__name__": "__main__"})
    finally:
        os.chdir(cwd)
        if saved is None:
            del sys.modules["setuptools"]
        else:
            sys.modules["setuptools"] = saved
    return captured


def _names(reqs):
    return {r.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower() for r in reqs}


def _run(code, blocked=(), timeout=300):
    """Runs `code` in a fresh interpreter (from the repository root) with `blocked` modules missing."""
    prelude = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


# ---------------------------------------------------------------------------------- setup.py
def test_core_requirements_are_tensorflow_tfp_keras_numpy_only():
    kw = _setup_kwargs()
    assert _names(kw["install_requires"]) == {"tensorflow", "tensorflow-probability", "keras", "numpy"}
    extras_require = kw["extras_require"]
    assert {"tfds", "plots", "photos", "tensorboard", "test", "bench", "all"} <= set(extras_require)
    # [all] is every user extra; [test] is every user extra plus pytest; the PyTorch baseline is in neither.
    user = set().union(*(_names(extras_require[e]) for e in extras.EXTRAS))
    assert _names(extras_require["all"]) == user
    assert _names(extras_require["test"]) == user | {"pytest"}
    assert {"torch", "normflows"} == _names(extras_require["bench"])
    assert not {"torch", "normflows"} & (_names(extras_require["all"]) | _names(extras_require["test"]))


def test_extras_module_names_the_setup_extras():
    """Each extra `require` may name exists in setup.py and brings the packages it names."""
    extras_require = _setup_kwargs()["extras_require"]
    pip_name = {"tensorflow_datasets": "tensorflow-datasets", "matplotlib": "matplotlib", "sklearn": "scikit-learn",
                "PIL": "pillow", "tensorboard": "tensorboard"}
    for extra, modules in extras.EXTRAS.items():
        assert {pip_name[m] for m in modules} <= _names(extras_require[extra]), extra


def test_the_test_extra_covers_every_third_party_import_of_the_tests():
    """CI runs `pip install ".[test]"`, so every package a test imports must come with it."""
    kw = _setup_kwargs()
    installed = _names(kw["install_requires"]) | _names(kw["extras_require"]["test"])
    pip_name = {"tensorflow_probability": "tensorflow-probability", "tensorflow_datasets": "tensorflow-datasets",
                "sklearn": "scikit-learn", "PIL": "pillow", "scipy": "scikit-learn", "h5py": "tensorflow"}
    local = {"tfp_glow"} | {path.stem for path in (ROOT / "tests").glob("*.py")}  # the tests' own helpers
    imported = set()

    def visit(node):
        if isinstance(node, ast.With) and "pytest.raises" in ast.unparse(node.items[0].context_expr):
            return  # an import that the test expects to fail
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    files = sorted((ROOT / "tests").rglob("*.py"))
    assert any(p.parent != ROOT / "tests" for p in files)  # the folders' tests are read too
    for path in files:
        visit(ast.parse(path.read_text()))
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m not in local}
    missing = {m for m in third_party if pip_name.get(m, m).lower() not in installed}
    assert not missing, f"tests import {sorted(missing)}, which pip install '.[test]' does not bring"


def test_package_data_ships_the_digits_and_their_credits():
    kw = _setup_kwargs()
    patterns = kw["package_data"]["tfp_glow.data"]
    data_dir = ROOT / "tfp_glow" / "data"
    shipped = {str(p.relative_to(data_dir)) for p in (data_dir / "files").iterdir()}
    for name in ("files/digits.npz", "files/README.md"):
        assert name in shipped and any(fnmatch.fnmatch(name, p) for p in patterns), name
    manifest = (ROOT / "MANIFEST.in").read_text()
    assert "tfp_glow/data/files/digits.npz" in manifest
    credits = (data_dir / "files" / "README.md").read_text()
    assert "CC BY 4.0" in credits and "10.24432/C50P49" in credits and "Alpaydin" in credits


# ------------------------------------------------------------------------------ shipped digits
def test_shipped_digits_are_scikit_learns_byte_for_byte():
    ref = sk_datasets.load_digits()
    with np.load(sources.DIGITS_FILE, allow_pickle=False) as npz:
        images, target = npz["images"], npz["target"]
    assert images.dtype == np.uint8 and images.shape == (1797, 8, 8)
    np.testing.assert_array_equal(images.astype(np.float64), ref.images)
    np.testing.assert_array_equal(target, ref.target)
    # load_digits as before the switch: scikit-learn's floats, the fixed permutation, round half up.
    perm = np.random.default_rng(0).permutation(1797)
    old = np.floor(ref.images * (255.0 / 16.0) + 0.5).astype(np.uint8)[..., None]
    for split, index in {"train": perm[:1293], "validation": perm[1293:1437], "test": perm[1437:],
                         "train+validation": perm[:1437]}.items():
        new = sources.load_digits(split)
        assert new.dtype == old.dtype and new.tobytes() == old[index].tobytes(), split


def test_core_works_without_any_optional_package_and_names_the_missing_extras(tmp_path):
    """With every optional package missing: the digits, a Glow with LU 1x1 convolutions, a
    training step and a titled PNG grid work; what needs an extra raises MissingExtraError naming
    it, and the CLI says so in one `error:` line (one interpreter, for time: TensorFlow loads once)."""
    done = _run(f"""
        import contextlib, io
        import numpy as np
        import tfp_glow as tg
        from tfp_glow import data, plots
        from tfp_glow.cli import main
        from tfp_glow.extras import MissingExtraError
        x = tg.data.load_digits("train")[:64]
        model = tg.FlowModel(tg.FlowConfig("glow", (8, 8, 1), dict(levels=1, steps=1, hidden_channels=8)), n_bits=5)
        model.compile(jit_compile=False)
        model.fit(tg.data.make_dataset(x, 32), epochs=1, verbose=0)
        plots.save_image_grid({str(tmp_path / "g.png")!r}, model.sample_images(4, 0.7, seed=0), title="T=0.7")
        loaded = [m for m in {OPTIONAL!r} if sys.modules.get(m) is not None]
        assert not loaded, loaded
        print("core ok", x.shape)
        for call, extra in [(lambda: plots.plot_samples_2d(np.zeros((3, 2)), "x.png"), "plots"),
                            (lambda: data.load_tfds("mnist"), "tfds"),
                            (lambda: data.load_photos32("test", n=2), "photos")]:
            try:
                call()
            except MissingExtraError as e:
                assert isinstance(e, ImportError) and e.extra == extra, (e.extra, e)
                print("MESSAGE", e)
            else:
                raise AssertionError(f"no MissingExtraError for {{extra}}")
        try:
            main(["train", "--data", "mnist", "--run-dir", {str(tmp_path / "run")!r}, "--epochs", "1"])
        except SystemExit as e:
            print("EXIT", e.code)
        rc = main(["train", "--data", "moons", "--epochs", "1", "--steps-per-epoch", "2", "--steps", "2",
                   "--hidden", "8", "--no-xla", "--run-dir", {str(tmp_path / "moons")!r}])
        print("MOONS", rc)
    """, blocked=OPTIONAL)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "core ok (64, 8, 8, 1)" in done.stdout
    assert (tmp_path / "g.png").stat().st_size > 100
    messages = [line for line in done.stdout.splitlines() if line.startswith("MESSAGE")]
    for extra, module in [("plots", "matplotlib"), ("tfds", "tensorflow_datasets"), ("photos", "sklearn")]:
        assert any(f'pip install "tfp_glow[{extra}]"' in m and repr(module) in m for m in messages), (extra, messages)
    # The CLI: exit code 2 and one error line naming the extra, no traceback.
    assert "EXIT 2" in done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and 'pip install "tfp_glow[tfds]"' in errors[0], done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    # Training without matplotlib and tensorboard: the run is written, the figures and logs are
    # skipped with one note each.
    assert "MOONS 0" in done.stdout
    assert 'density figures and curves.png skipped: matplotlib is not installed (pip install "tfp_glow[plots]")' \
        in done.stdout
    assert 'TensorBoard logs skipped: the tensorboard package is not installed' in done.stdout
    written = set(os.listdir(tmp_path / "moons"))
    assert {"config.json", "metrics.csv", "model.weights.h5"} <= written, written
    assert not {"density.png", "curves.png", "samples_epoch001.png", "logs"} & written, written


def test_photos32_names_its_extra_when_only_pillow_is_missing():
    """scikit-learn reads its sample photographs with pillow, so `photos` needs both."""
    done = _run("""
        from tfp_glow.extras import MissingExtraError
        from tfp_glow.data import sources
        try:
            sources.load_photos32("test", n=2)
        except MissingExtraError as e:
            print("MESSAGE", e.extra, e.module)
    """, blocked=("PIL",))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MESSAGE photos PIL" in done.stdout


def test_require_passes_other_import_errors_through():
    """Only the missing module itself becomes a MissingExtraError; other failures stay as they are."""
    with pytest.raises(extras.MissingExtraError, match=r'no_such_pkg_xyz.*tfp_glow\[plots\]'):
        extras.require("no_such_pkg_xyz.sub", "plots", "a test")
    done = _run("""
        import types
        broken = types.ModuleType("matplotlib")
        broken.__path__ = []  # a package without its submodules: the submodule import fails inside it
        sys.modules["matplotlib"] = broken
        from tfp_glow import extras
        try:
            extras.require("matplotlib.figure", "plots", "a test")
        except extras.MissingExtraError:
            raise AssertionError("a broken installation reported as a missing extra")
        except ModuleNotFoundError as e:
            assert e.name == "matplotlib.figure", e.name
            print("passed through")
    """)
    assert done.returncode == 0 and "passed through" in done.stdout, done.stderr[-2000:]
    with pytest.raises(ValueError, match="unknown extra"):
        extras.require("json", "no_such_extra", "a test")


# --------------------------------------------------------------------------------- numpy LU
@pytest.mark.parametrize("c", [1, 2, 3, 4, 8, 16, 48])
def test_lu_decompose_matches_scipy(c):
    for seed in range(3):
        w = random_rotation(c, seed)
        p, l, u = lu_decompose(w)
        ref_p, ref_l, ref_u = scipy.linalg.lu(w)
        np.testing.assert_array_equal(p, ref_p)  # the same pivots
        np.testing.assert_allclose(l, ref_l, atol=1e-12)
        np.testing.assert_allclose(u, ref_u, atol=1e-12)
        np.testing.assert_allclose(p @ l @ u, w, atol=1e-12)
        assert np.allclose(np.diag(l), 1.0) and np.allclose(np.triu(l, 1), 0.0) and np.allclose(np.tril(u, -1), 0.0)
        assert np.abs(l).max() <= 1.0 + 1e-12  # partial pivoting


def test_lu_decompose_singular_and_non_square():
    w = np.random.default_rng(0).standard_normal((5, 5))
    w[:, 2] = 0.0  # a zero column: no pivot there, elimination goes on
    p, l, u = lu_decompose(w)
    np.testing.assert_allclose(p @ l @ u, w, atol=1e-12)
    np.testing.assert_array_equal(p, scipy.linalg.lu(w)[0])
    with pytest.raises(ValueError, match="square"):
        lu_decompose(np.zeros((2, 3)))


# ------------------------------------------------------------------------- titled PNG grids
def test_png_grid_pixels_and_title(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (5, 3, 4, 3), dtype=np.uint8)
    path = plots.save_image_grid(str(tmp_path / "g.png"), x, scale=2, pad=1, title=plots.sample_title(0.7, epoch=3))
    with Image.open(path) as img:
        img.load()
        assert img.text["Title"] == "samples at temperature T=0.7 (epoch 3)"
        pixels = np.asarray(img.convert("RGB"))
    grid = plots.image_grid(plots.upscale(x, 2), pad=1, pad_value=128)  # under the caption strip, unchanged
    np.testing.assert_array_equal(pixels[-grid.shape[0]:, :grid.shape[1]], grid)
    # A grey grid stays one channel, and a file without a title has none.
    gray = plots.save_image_grid(str(tmp_path / "gray.png"), x[..., :1], scale=1)
    with Image.open(gray) as img:
        assert img.mode == "L" and "Title" not in img.text
    with pytest.raises(ValueError, match="keywords"):
        plots.encode_png(x[0], {"": "empty keyword"})
    # PIL verifies every chunk's CRC while it reads the file.
    Image.open(io.BytesIO(plots.encode_png(x[0], {"Title": "a", "Comment": "b"}))).load()


# ------------------------------------------------------------------------------- start-up
STARTUP = """
import sys
import tfp_glow
after_import = sorted(m for m in HEAVY if m in sys.modules)
import tfp_glow.cli
try:
    tfp_glow.cli.main(sys.argv[1:])
except SystemExit as e:
    assert e.code == 0, e.code
after_help = sorted(m for m in HEAVY if m in sys.modules)
print("LOADED", after_import, after_help)
"""


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"]])
def test_import_and_help_load_no_heavy_or_optional_module_and_print_no_log_line(argv):
    """`import tfp_glow` and `tfp-glow --help` import neither TensorFlow nor any extra, so they
    are quick and print no TensorFlow log line (checked by what is loaded, not by timing)."""
    heavy = ("tensorflow", "keras", "tensorflow_probability", "matplotlib", "sklearn", "scipy", "PIL",
             "tensorflow_datasets", "tensorboard", "torch")
    done = subprocess.run([sys.executable, "-c", f"HEAVY = {heavy!r}\n" + STARTUP, *argv], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "LOADED [] []" in done.stdout and "usage: tfp-glow" in done.stdout
    assert done.stderr == ""

"""`tests/` mirrors the package (docs/design.md, Tests): `tests/<folder>/test_<module>[_<what>].py`
tests `tfp_glow/<folder>/<module>.py`; the few suites that cover a whole folder are named here."""
import pathlib

import support

PACKAGE = support.REPO / "tfp_glow"
# suites over a whole folder, not one module
FOLDER_SUITES = {
    "bijectors": {"properties", "against_tfp", "tfp_private_api"},
    "models": {"builders"},
    "runs": {"run_safety"},
    "cli": {"latent_commands", "startup"},
}


def _modules(folder):
    return {p.stem for p in (PACKAGE / folder).glob("*.py") if p.stem != "__init__"}


def _unmatched(test_file):
    folder, name = test_file.parent.name, test_file.stem[len("test_"):]
    if not (PACKAGE / folder / "__init__.py").exists():
        return f"{test_file.relative_to(support.TESTS)}: tfp_glow has no folder {folder!r}"
    if name in FOLDER_SUITES.get(folder, ()):
        return None
    if any(name == m or name.startswith(m + "_") for m in _modules(folder)):
        return None
    return f"{test_file.relative_to(support.TESTS)}: no module tfp_glow/{folder}/{name.split('_')[0]}*.py"


def test_every_test_folder_mirrors_a_package_folder_and_every_file_a_module():
    files = sorted(support.TESTS.glob("*/test_*.py"))
    assert len(files) > 40
    assert [msg for msg in map(_unmatched, files) if msg] == []


def test_every_package_folder_has_tests():
    folders = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert folders - {p.name for p in support.TESTS.iterdir() if p.is_dir() and list(p.glob("test_*.py"))} == set()


def test_the_check_reports_a_file_that_mirrors_nothing(tmp_path):
    assert _unmatched(support.TESTS / "training" / "test_no_such_module.py")
    assert _unmatched(support.TESTS / "nowhere" / "test_model.py")
    assert _unmatched(support.TESTS / "training" / "test_model_keras_contract.py") is None

"""Old top-level module paths keep working: each resolves to the module now in its folder."""
import importlib
import sys

import pytest

import tfp_glow as tg


@pytest.mark.parametrize("old", sorted(tg.MOVED_MODULES))
def test_an_old_module_path_is_the_moved_module(old):
    new = importlib.import_module(f"tfp_glow.{tg.MOVED_MODULES[old]}")
    assert importlib.import_module(f"tfp_glow.{old}") is new
    assert getattr(tg, old) is new
    # the alias does not rename the real module or take over its spec
    assert new.__name__ == f"tfp_glow.{tg.MOVED_MODULES[old]}" and new.__spec__.name == new.__name__
    assert sys.modules[f"tfp_glow.{old}"] is new


def test_from_imports_of_old_paths_work():
    from tfp_glow.callbacks import SampleGrid
    from tfp_glow.export import export_saved_model
    from tfp_glow.training.callbacks import SampleGrid as moved
    from tfp_glow.serving import export_saved_model as served
    assert SampleGrid is moved and export_saved_model is served


def test_no_old_module_file_is_left_at_the_top_level():
    import pathlib
    top = pathlib.Path(tg.__file__).parent
    assert not [old for old in tg.MOVED_MODULES if (top / f"{old}.py").exists()]


def test_an_unknown_name_is_still_an_error():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("tfp_glow.no_such_module")
    with pytest.raises(AttributeError):
        tg.no_such_module  # noqa: B018


def test_every_public_module_is_reachable_from_the_package():
    """`import tfp_glow as tg` then `tg.<folder>`, `tg.recipes`, `tg.splits`, `tg.ConditionalFlowModel`."""
    for name in ("analysis", "bijectors", "data", "extras", "models", "numerics", "plots", "recipes", "runs",
                 "serving", "training", "splits", "latent", "callbacks"):
        assert getattr(tg, name).__name__.startswith("tfp_glow."), name
    from tfp_glow.training.conditional import ConditionalFlowModel
    assert tg.ConditionalFlowModel is ConditionalFlowModel
    assert "ConditionalFlowModel" in tg.__all__ and "recipes" in dir(tg)

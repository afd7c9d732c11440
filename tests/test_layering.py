"""The import graph flows one way, folder by folder (docs/design.md, Layering):

    cli -> bench -> recipes -> runs, analysis -> training -> serving -> models -> bijectors
        -> data, numerics, plots (and extras, standard library only, everywhere).

Every `import` of a tfp_glow module anywhere in a file counts, at module level or inside a
function, so an import cannot hide a cycle by moving into a function. Lazy imports remain
only at the top (the CLI loads a command's module when it runs, for start-up time; the bench
loads the PyTorch peer when asked) and they too must point down.
"""
import ast
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "tfp_glow"

# Lower numbers are lower layers. A module may import its own layer or lower ones. The
# longest matching prefix decides a module's layer.
LAYERS = {
    "tfp_glow.extras": 0,     # optional dependencies and MissingExtraError (standard library only)
    "tfp_glow.data": 0,       # sources, splits, labels, pipelines, quantization
    "tfp_glow.numerics": 0,   # stability (warmup, clipping, non-finite steps), mixed precision, weight averaging
    "tfp_glow.plots": 0,      # figures (uses data's quantization)
    "tfp_glow.bijectors": 1,  # one transform per module, and the conditioner networks they own
    "tfp_glow.models": 2,     # flow builders, FlowConfig, dequantization, the latent sampler and levels
    "tfp_glow.serving": 3,    # SavedModel signatures of a model instance (takes the model as an argument)
    "tfp_glow.training": 4,   # FlowModel, ConditionalFlowModel, callbacks, distribute, weight files
    "tfp_glow.analysis": 5,   # latent toolkit, OOD scores (take a trained model as an argument)
    "tfp_glow.runs": 5,       # run directories: build and load a FlowModel
    "tfp_glow": 5,            # the package's __init__: lazy re-exports
    "tfp_glow.recipes": 6,    # the CLI's defaults per data set
    "tfp_glow.bench": 7,
    "tfp_glow.cli": 8,
}
# Folders that import nothing from tfp_glow outside themselves, but EVERYWHERE.
LEAVES = ("tfp_glow.data", "tfp_glow.numerics", "tfp_glow.extras")
# Standard-library-only helpers every layer, leaves included, may import.
EVERYWHERE = ("tfp_glow.extras",)
# The only places where a tfp_glow import may sit inside a function (start-up time, optional
# dependencies); each still has to point down.
LAZY_ALLOWED = ("tfp_glow.cli", "tfp_glow.bench")


def _module_name(path):
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


MODULES = _modules()


def _resolve(name):
    """The module a dotted import names: itself, or its parent when the tail is an attribute."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module, path):
    """`[(imported module, lineno, inside a function)]` of tfp_glow modules."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("tfp_glow"):
                        found.append((_resolve(alias.name), child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - child.level + 1] + ([base] if base else []))
                if base.startswith("tfp_glow"):
                    for alias in child.names:
                        target = f"{base}.{alias.name}"
                        found.append((target if target in MODULES else _resolve(base), child.lineno, in_function))
            visit(child, nested)

    visit(tree, False)
    return [(m, line, lazy) for m, line, lazy in found if m and m != module]


def _layer(module):
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def test_every_module_has_a_layer():
    for m in MODULES:
        assert any(m == p or m.startswith(p + ".") for p in LAYERS), f"{m} has no layer in {__file__}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    for target, line, _ in GRAPH[module]:
        # a package's __init__ may import its own submodules
        if target.startswith(module + ".") and MODULES[module].name == "__init__.py":
            continue
        assert _layer(target) <= _layer(module), (
            f"{MODULES[module].name}:{line}: {module} (layer {_layer(module)}) imports {target} "
            f"(layer {_layer(target)}), a higher layer")
        if any(module == p or module.startswith(p + ".") for p in LEAVES) and target not in EVERYWHERE:
            assert target.split(".")[:2] == module.split(".")[:2], (
                f"{module}:{line} imports {target}; it must import nothing else from tfp_glow")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_hides_in_a_function(module):
    if any(module == p or module.startswith(p + ".") for p in LAZY_ALLOWED):
        return
    lazy = [(t, line) for t, line, inside in GRAPH[module] if inside]
    assert not lazy, f"{module} imports {lazy} inside functions; import at the top (layers point down)"


def test_the_graph_has_no_cycles():
    state = {}

    def visit(m, stack):
        state[m] = "open"
        for target, line, _ in GRAPH[m]:
            if state.get(target) == "open":
                cycle = stack[stack.index(target):] + [m, target] if target in stack else [m, target]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, stack + [m])
        state[m] = "done"

    for m in MODULES:
        if m not in state:
            visit(m, [])


def test_the_layering_check_catches_an_upward_import(tmp_path):
    """The checker is not vacuous: training importing the CLI would be reported."""
    bad = tmp_path / "training.py"
    bad.write_text("from tfp_glow import cli\n\ndef f():\n    from tfp_glow import runs\n")
    found = _imports("tfp_glow.training", bad)
    assert ("tfp_glow.cli", 1, False) in found and ("tfp_glow.runs", 4, True) in found
    assert _layer("tfp_glow.cli") > _layer("tfp_glow.training")
    assert _layer("tfp_glow.runs") > _layer("tfp_glow.training")


def test_every_folder_is_a_package_that_setup_installs():
    """A folder without `__init__.py` imports from a checkout (a namespace package) but
    setup.py's `find_packages` leaves it out of the wheel."""
    folders = {p.parent for p in ROOT.rglob("*.py")}
    assert len(folders) > 10
    assert sorted(str(f.relative_to(ROOT.parent)) for f in folders if not (f / "__init__.py").exists()) == []

"""The house plan (docs/architecture.md), held against the code: in the package as installed, no
module imports one on a floor above its own, and imports form no circle between modules (anywhere
in a module, functions included: an import inside a function still runs, later).

Read from the source, not by importing it (``if TYPE_CHECKING:`` imports never run and are left
out). Before issue 25 the data stage and four pipeline modules imported ``__version__`` from
``aqa/__init__.py``, the package's public face, whose lazy names load the API and so the pipeline
(arrows up: this test failed on that code), and ``pipeline/extract.py`` and
``pipeline/extract_ray.py`` imported each other (the second inside a function): both tests failed
on that code.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGE_FOLDERS = {"aqa": "aqa", "aqa.extractors": "extractors", "aqa.data": "data", "aqa.models": "models",
                 "aqa.pipeline": "pipeline"}  # package -> folder, as setup.cfg's package_dir maps them


def floor(module: str) -> int:
    """1: what every stage shares; 2: the stages; 3: the commands (and the synthetic data makers,
    which write feature stores); 4: the public API over the commands, and ``aqa`` itself, whose
    names are the API's."""
    if module in ("aqa", "aqa.api"):
        return 4
    if module.startswith(("aqa.pipeline", "aqa.synthetic")):
        return 3
    if module.startswith(("aqa.extractors", "aqa.data", "aqa.models")):
        return 2
    return 1


def installed_modules() -> dict[str, Path]:
    """Every module of the installed package, by dotted name."""
    modules = {}
    for package, folder in STAGE_FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT / folder).with_suffix("")
            parts = [part for part in relative.parts if part != "__init__"]
            if package == "aqa" and parts and parts[0] in {"extractors", "data", "models", "pipeline"}:
                continue
            modules[".".join([package, *parts])] = path
    return modules


def imports_of(path: Path, module: str, known: set[str], *, load_time: bool) -> set[str]:
    """The aqa modules ``module`` imports: when it is loaded (``load_time``), or anywhere in it."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body + node.orelse + [s for handler in getattr(node, "handlers", []) for s in handler.body])
            elif not load_time and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                                     ast.With, ast.For, ast.While)):
                visit(node.body)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name.startswith("aqa"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x
                    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
                if base.startswith("aqa"):
                    for alias in node.names:
                        found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)

    visit(tree.body)
    return {name for name in found if name in known and name != module}


def import_graph(*, load_time: bool = True) -> dict[str, set[str]]:
    modules = installed_modules()
    return {name: imports_of(path, name, set(modules), load_time=load_time) for name, path in modules.items()}


def test_the_graph_is_read_from_the_installed_layout():
    graph = import_graph()
    assert "aqa.pipeline.extract.extraction" in graph and "aqa.models.checkpoint" in graph
    assert "aqa.extractors.video_steps" in graph["aqa.extractors.parallel"]


def test_no_module_imports_one_on_a_floor_above_it():
    graph = import_graph(load_time=False)
    upward = sorted(f"{module} -> {target}" for module, targets in graph.items() for target in targets
                    if floor(target) > floor(module))
    assert upward == []


def test_the_imports_form_no_circle():
    graph = import_graph(load_time=False)
    state: dict[str, str] = {}
    circles: list[list[str]] = []

    def walk(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                circles.append(path[path.index(target):] + [target])
            elif target not in state:
                walk(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    # A package's __init__ importing its own submodules (which may import names the package
    # re-exports) is how a Python package is loaded, not a circle between rooms.
    def within_one_package(circle: list[str]) -> bool:
        return any(all(name == package or name.startswith(package + ".") for name in circle) for package in circle)

    assert [circle for circle in circles if not within_one_package(circle)] == []


def test_no_package_hides_one_of_its_modules_behind_a_name():
    """A package's name that is also one of its modules' names makes ``import aqa.pipeline.predict.cli
    as m`` give whatever the package set (its ``cli`` function did: every command package re-exported
    it), not the module."""
    import importlib

    modules = installed_modules()
    packages = {name for name, path in modules.items() if path.name == "__init__.py"}
    for package in sorted(packages):
        loaded = importlib.import_module(package)
        for child in sorted(name for name in modules if name.rpartition(".")[0] == package):
            attribute = getattr(loaded, child.rpartition(".")[2], None)
            assert attribute is None or attribute is importlib.import_module(child), \
                f"{package}.{child.rpartition('.')[2]} is not the module {child}"

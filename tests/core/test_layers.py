"""The package's floors: module-level imports of resnet_core form no cycle and only go down.

Read from the source with ``ast`` (nothing is imported). Counted: imports at module level, including those
inside module-level ``if``/``try``. Not counted: imports inside functions and classes (a lazy import,
including PEP 562 ``__getattr__`` bodies that keep a moved name reachable from its old module),
``if TYPE_CHECKING:`` blocks (annotations only) and ``if __name__ == "__main__":`` blocks (run as a script).
A package's submodules (``probes/``, ``cam/``, ``checkpoints/``, ``plots/``) live on that package's floor;
imports inside one package need only be acyclic.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "resnet_core"

# Floors from the ground up (docs/architecture.md; the suggested layout, with images below
# checkpoints): a module imports only lower floors.
# images sits below checkpoints because a checkpoint's preprocessing is an images.Preprocessing; fit (which
# weights fit which net) reads checkpoints and weights ids, so it stands with the instruments.
FLOORS: dict[str, int] = {
    # 0: settings, errors and the primitives every other module stands on
    "settings": 0, "errors": 0, "hooks": 0, "state": 0, "blocks": 0, "targets": 0, "heavy": 0, "card": 0,
    # 1: the networks and the data
    "models": 1, "data": 1,
    # 2: what a model is (shapes, costs) and what an image becomes
    "describe": 2, "costs": 2, "images": 2,
    # 3: checkpoints, read and written
    "checkpoints": 3,
    # 4: weights: torchvision, downloads, load_model; demo: the embedded Shapes checkpoints (each lazily uses the
    # other), read from the data package demo_models
    "weights": 4, "demo": 4, "demo_models": 4,
    # 5: the instruments, the engine, and which weights fit which net (fit)
    "probes": 5, "cam": 5, "train": 5, "lesson": 5, "lesson_words": 5, "landscape": 5, "lesion": 5, "fit": 5,
    # 6: jobs and run folders; the lesson's instruments on any trained net (runs, uploads, demos)
    "runs": 6, "any_net": 6,
    # every page's declared settings (their choices come from the instruments, presets and weights below)
    "page_specs": 6,
    # links: reading a link against the declared settings (checkpoint paths, weights ids, architectures)
    "links": 7,
    # 7: figures and notebooks
    "plots": 7, "notebooks": 7,
    # 8: every console entry point
    "cli": 8,
    # the package's face re-exports everything: nothing inside may import it
    "__init__": 99,
}

# Imports that still go up or sideways, each with who owns the module and why it is still there. Empty
# when the house is done; a new violation fails the test (this list only documents, it does not hide).
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def _skipped_block(node: ast.If) -> bool:
    """``if TYPE_CHECKING:`` and ``if __name__ == "__main__":`` blocks hold no import of the running package."""
    test = node.test
    if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
        return True
    if isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING":
        return True
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__")


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.append(node)
            elif isinstance(node, ast.If):
                if not _skipped_block(node):
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                    visit(block)
            elif isinstance(node, ast.With):
                visit(node.body)

    visit(tree.body)
    return found


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The resnet_core modules one import statement loads."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name.split(".")[0] == "resnet_core"} & known
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != "resnet_core":
        return set()
    found = {target} if target in known else set()
    found |= {f"{target}.{alias.name}" for alias in node.names} & known  # ``from . import cli``
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        for node in _module_level_imports(tree):
            edges |= _targets(name, path.name == "__init__.py", node, known)
        graph[name] = edges - {name}
    return graph


def _unit(module: str) -> str:
    """The floor unit: ``resnet_core.probes.gradients`` -> ``probes``; the package itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_is_read_from_every_module():
    graph = _graph()
    assert "resnet_core.settings" in graph and "resnet_core.models" in graph
    # a sanity check of the reader itself: models stands on blocks, and weights on checkpoints
    assert "resnet_core.blocks" in graph["resnet_core.models"]
    assert any(_unit(m) == "checkpoints" for m in graph["resnet_core.weights"])


def test_no_import_cycle_between_modules():
    cycle = _cycle(_graph())
    assert cycle is None, f"module-level imports go round in a circle: {' -> '.join(cycle or [])}"


def test_no_import_cycle_between_floors():
    units: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        units.setdefault(_unit(module), set()).update(_unit(t) for t in targets if _unit(t) != _unit(module))
    cycle = _cycle(units)
    assert cycle is None, f"packages/modules import one another in a circle: {' -> '.join(cycle or [])}"


def test_every_import_goes_down_a_floor():
    graph = _graph()
    upward = []
    for module, targets in sorted(graph.items()):
        here = _unit(module)
        if here == "__init__" or here not in FLOORS:
            continue
        for target in sorted(targets):
            there = _unit(target)
            if there == here or there not in FLOORS:
                continue
            if FLOORS[there] >= FLOORS[here] and (here, there) not in KNOWN_EXCEPTIONS:
                upward.append(f"{module} (floor {FLOORS[here]}) imports {target} (floor {FLOORS[there]})")
    assert not upward, "imports that do not go down a floor:\n" + "\n".join(upward)


def test_every_module_has_a_floor():
    """A new module or package gets a floor here (one line), so the rule above covers it."""
    missing = sorted({_unit(m) for m in _graph()} - set(FLOORS))
    assert not missing, f"give these a floor in FLOORS of tests/core/test_layers.py: {', '.join(missing)}"


@pytest.mark.parametrize("unit", ["train", "weights", "checkpoints", "settings"])
def test_the_engine_and_the_weights_import_no_runs_and_no_cli(unit):
    """``train.main`` and ``weights.main`` live in cli (the top floor) and are reached lazily (PEP 562); the
    engine reports through callbacks and never imports the run writer; settings stand on nothing."""
    graph = _graph()
    mine = [m for m in graph if _unit(m) == unit]
    assert mine, f"no module {unit}"
    reached = {_unit(t) for m in mine for t in graph[m]}
    assert not reached & {"cli", "runs"}, f"{unit} imports {sorted(reached & {'cli', 'runs'})}"
    if unit == "settings":
        assert reached <= {"settings"}, f"settings imports {sorted(reached - {'settings'})}"


# ------------------------------------------------------------------------------------------- room sizes
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 90
ROOT = PACKAGE.parent


def _python_files() -> list[Path]:
    folders = [ROOT / "resnet_core", ROOT / "app", ROOT / "pages"]
    return sorted(p for folder in folders for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_is_too_big_to_read() -> None:
    too_big = {str(p.relative_to(ROOT)): n for p in _python_files()
               if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not too_big, f"modules over {MAX_MODULE_LINES} lines: {too_big}"


def test_no_function_is_too_long_to_read() -> None:
    too_long = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"

"""The package's floors: imports of resnet_core form no cycle and only go down; every name has one address.

Read from the source with ``ast`` (nothing is imported). Counted: every import, at module level and inside
functions and classes (a lazy import is still an arrow). Not counted: ``if TYPE_CHECKING:`` blocks
(annotations only) and ``if __name__ == "__main__":`` blocks (the ``python -m`` entry points, which forward to
cli, the top floor). A package's submodules (``probes/``, ``cam/``, ``weights/``, ``lesson/``, ``plots/``)
live on that package's floor; imports inside one package need only be acyclic.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "resnet_core"

# Floors from the ground up (docs/architecture.md): a module imports only lower floors, counting imports inside
# functions. images sits below the weights wing because a checkpoint's preprocessing is an images.Preprocessing.
FLOORS: dict[str, int] = {
    # 0: settings, errors and the primitives every other module stands on
    "settings": 0, "errors": 0, "hooks": 0, "blocks": 0, "targets": 0, "job_queue": 0, "card": 0,
    # 1: the networks and the data
    "models": 1, "data": 1,
    # 2: what a model is (shapes, costs) and what an image becomes
    "describe": 2, "costs": 2, "images": 2,
    # 3: the weights wing: ids, checkpoints, torchvision weights, the embedded demos, which weights fit, load_model
    "weights": 3,
    # 4: the instruments, explanations and the race engine
    "probes": 4, "cam": 4, "train": 4, "landscape": 4, "lesion": 4,
    # 5: jobs and run folders, and the class poll's store in the runs folder
    "runs": 5, "polls": 5,
    # 6: the lesson (its steps, its words, and steps 6-7 on any trained net: runs, uploads, demos)
    "lesson": 6, "questions": 6,
    # 7: every page's declared settings; 8: reading a link against them
    "page_specs": 7, "links": 8,
    # 9: figures and notebooks
    "plots": 9, "notebooks": 9,
    # 10: every console entry point
    "cli": 10,
    "probe_cli": 11,
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


def _imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of a module, at any depth, but not in the blocks that are skipped."""
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _skipped_block(node)
               for n in ast.walk(node)}
    return [node for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in skipped]


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
    submodules = {f"{target}.{alias.name}" for alias in node.names} & known  # ``from . import cli``
    if submodules and len(submodules) == len(node.names):
        return submodules  # only modules are imported: the package's face is not run through
    return ({target} if target in known else set()) | submodules


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        for node in _imports(tree):
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
    # a sanity check of the reader itself: models stands on blocks, weights on its checkpoints, and an import
    # inside a function counts (load_model's torchvision state_dict comes through a lazy import there)
    assert "resnet_core.blocks" in graph["resnet_core.models"]
    assert "resnet_core.weights.checkpoints" in graph["resnet_core.weights"]
    assert "resnet_core.runs" in graph["resnet_core.lesson.steps"]  # only inside functions


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


@pytest.mark.parametrize("unit", ["train", "weights", "settings"])
def test_the_engine_and_the_weights_import_no_runs_and_no_cli(unit):
    """The command lines live in cli (the top floor), reached only by ``python -m`` entry points; the engine
    reports through callbacks and never imports the run writer; settings stand on nothing."""
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


# ------------------------------------------------------------------------------------------- one address
def _trees() -> dict[str, tuple[Path, ast.Module]]:
    return {name: (path, ast.parse(path.read_text(encoding="utf-8"))) for name, path in _modules().items()}


def test_no_module_forwards_names_through_getattr() -> None:
    """Only the package's face may load its documented names lazily (PEP 562); below it nothing forwards."""
    forwarders = [name for name, (_, tree) in _trees().items() if name != "resnet_core"
                  and any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body)]
    assert not forwarders, f"module-level __getattr__ below the face: {forwarders}"


def test_every_package_has_an_all_naming_only_what_it_holds() -> None:
    import importlib

    for name, (path, _tree) in _trees().items():
        if path.name != "__init__.py":
            continue
        package = importlib.import_module(name)
        assert hasattr(package, "__all__"), f"{name} has no __all__"
        missing = [n for n in package.__all__ if not hasattr(package, n)]
        assert not missing, f"{name}.__all__ names what it does not hold: {missing}"


def test_a_package_face_hands_on_only_its_own_rooms() -> None:
    """What a subpackage's ``__all__`` lists is its own (defined there or in its modules): a name owned elsewhere
    has that address only."""
    known = set(_modules())
    for name, (path, tree) in _trees().items():
        if path.name != "__init__.py" or name == "resnet_core":
            continue
        listed = {elt.value for node in tree.body if isinstance(node, ast.Assign)
                  and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
                  for elt in node.value.elts}
        for node in _imports(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            for target in _targets(name, True, node, known):
                outside = [a.asname or a.name for a in node.names if (a.asname or a.name) in listed]
                mine = target == name or target.startswith(name + ".")
                assert mine or not outside, f"{name} hands on {outside} of {target}"


def test_private_names_stay_in_their_package() -> None:
    """``from x import _name`` only inside x's own room (a package and its submodules), never across."""
    known = set(_modules())
    crossing = []
    for name, (path, tree) in _trees().items():
        for node in _imports(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            for target in _targets(name, path.name == "__init__.py", node, known):
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private and _unit(target) != _unit(name):
                    crossing.append(f"{name} imports {private} from {target}")
    assert not crossing, "\n".join(crossing)


def test_no_import_is_kept_only_to_be_handed_on() -> None:
    """No ``noqa: F401`` re-export below the faces: a name is imported where it is used, from its owner."""
    handed_on = [f"{p.relative_to(ROOT)}:{i}" for p in _python_files() if p.name != "__init__.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if "noqa: F401" in line]
    assert not handed_on, f"imports kept only to be handed on: {handed_on}"


# ------------------------------------------------------------------------------------------- thin pages
MAX_PAGE_SCRIPT_LINES = 200


def _page_script_lines(path: Path) -> int:
    """Module-level lines of a page that run as its script: not its functions, imports or docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return sum((n.end_lineno or n.lineno) - n.lineno + 1 for n in tree.body
               if not isinstance(n, ast.FunctionDef | ast.ClassDef | ast.Import | ast.ImportFrom)
               and not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)))


def test_pages_are_thin() -> None:
    """A page draws widgets, calls the library and shows figures: a short script and no torch call of its own."""
    pages = sorted((ROOT / "pages").glob("*.py"))
    assert len(pages) >= 6
    long = {p.name: n for p in pages if (n := _page_script_lines(p)) > MAX_PAGE_SCRIPT_LINES}
    assert not long, f"page scripts over {MAX_PAGE_SCRIPT_LINES} lines: {long}"
    calls = [f"{p.name}:{node.lineno}" for p in pages for node in ast.walk(ast.parse(p.read_text()))
             if isinstance(node, ast.Call) and ast.unparse(node.func).startswith("torch.")]
    assert not calls, f"tensor work in a page (it belongs in resnet_core): {calls}"


def test_the_documented_api_is_every_face_s_all() -> None:
    """docs/architecture.md lists the public API: resnet_core's ``__all__`` and every subpackage's, name for name."""
    import importlib
    import re

    text = (ROOT / "docs" / "architecture.md").read_text()
    text = text[text.index("## The public API"):text.index("## The weights wing")]
    listed = {m.group(1): set(re.findall(r"`([^`]+)`", m.group(2)))
              for m in re.finditer(r"^- `(resnet_core[\w.]*)`: (.*)$", text, re.M)}
    packages = {name for name, path in _modules().items()  # the demo models' data package holds files only
                if path.name == "__init__.py" and name != "resnet_core.weights.demo_models"}
    assert packages <= set(listed), f"document every package's face: {sorted(packages - set(listed))}"
    for name, names in listed.items():
        assert names == set(importlib.import_module(name).__all__), f"{name}: the list differs from its __all__"

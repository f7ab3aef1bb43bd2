"""The house in figures: import circles and upward imports (imports inside functions counted), forwarding
``__getattr__``s, names imported only to be handed on, the largest module and function, the longest page script.

    python tools/house_report.py

Read from the source with ``ast``; nothing is imported. Floors come from tests/core/test_layers.py.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.core.test_layers import FLOORS, PACKAGE, _graph, _modules  # noqa: E402


def graph() -> dict[str, set[str]]:
    """Module -> the resnet_core modules it imports: the floors test's own reading (imports inside functions
    counted, ``TYPE_CHECKING`` and ``__main__`` blocks not)."""
    return {name: set(targets) for name, targets in _graph().items()}


def _floor(module: str) -> int:
    parts = module.split(".")
    return FLOORS.get(parts[1] if len(parts) > 1 else "__init__", 99)


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one room (Tarjan, on rooms: a package is one room)."""
    rooms: dict[str, set[str]] = {}
    for source, targets in edges.items():
        if _room(source) == "__init__":
            continue
        rooms.setdefault(_room(source), set()).update(_room(t) for t in targets if _room(t) not in ("__init__",))
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in rooms.get(v, ()):
            if w == v:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in list(rooms):
        if v not in index:
            visit(v)
    return out


def main() -> None:
    edges = graph()
    upward = sorted((s, t) for s, ts in edges.items() for t in ts
                    if _room(s) != _room(t) and _floor(t) > _floor(s) and not s.endswith("__main__"))
    forwarders = []
    largest_module = ("", 0)
    largest_function = ("", 0)
    for name, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        lines = len(text.splitlines())
        if lines > largest_module[1]:
            largest_module = (name, lines)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "__getattr__" and name != "resnet_core":
                forwarders.append(name)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > largest_function[1]:
                    largest_function = (f"{name}.{node.name}", length)
    pages = []
    for page in sorted((ROOT / "pages").glob("*.py")):
        tree = ast.parse(page.read_text(encoding="utf-8"))
        script = sum((n.end_lineno or n.lineno) - n.lineno + 1 for n in tree.body
                     if not isinstance(n, ast.FunctionDef | ast.ClassDef | ast.Import | ast.ImportFrom)
                     and not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)))
        pages.append((script, page.name))
    found = circles(edges)
    print(f"rooms: {len({_room(m) for m in edges})}, arrows: {sum(len(t) for t in edges.values())}")
    print(f"import circles (imports inside functions counted): {len(found)}")
    for circle in found:
        print(f"  {len(circle)} rooms: {', '.join(circle)}")
        inside = sorted((s, t) for s, ts in edges.items() for t in ts
                        if _room(s) in circle and _room(t) in circle and _room(s) != _room(t))
        for s, t in inside:
            print(f"    {s} -> {t}")
    print(f"upward imports: {len(upward)}")
    for s, t in upward:
        print(f"  {s} -> {t}")
    print(f"module-level __getattr__ below the face: {len(forwarders)} {forwarders}")
    print(f"largest module: {largest_module[0]} ({largest_module[1]} lines)")
    print(f"largest function: {largest_function[0]} ({largest_function[1]} lines)")
    print("page scripts (module-level lines; functions, imports and docstrings excluded): "
          + ", ".join(f"{n} {s}" for s, n in sorted(pages, reverse=True)))
    assert PACKAGE.is_dir()


if __name__ == "__main__":
    main()

"""The floor plan of ``pyimagesearch/``: layers that import only downwards, and no circle.

CONTRIBUTING.md draws the same layers. Every import is read, at module level and inside
functions; an import inside a function must say on the line above why it waits (what it
spares a command that does not need it), never to dodge a circle.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pyimagesearch"

# Bottom up. A module may import its own layer's modules and those of the layers below;
# rooms of one layer that must not import each other are listed apart in SIDE_BY_SIDE.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("", "runtime", "errors", "files", "locks", "scoring", "settings", "config"),  # the floor
    ("nn", "data"),
    ("run",),
    ("training",),
    ("evaluation",),
    ("export", "inference", "reporting", "distributed"),
    ("commands",),
)
SIDE_BY_SIDE = (("nn", "data"),)
# Third-party packages whose import is worth deferring until a command needs them.
DEFERRED_REASONS = ("mxnet", "onnx", "matplotlib", "gluoncv")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(["pyimagesearch", *parts])] = path
    return found


MODULES = _modules()


def _room(module: str) -> str:
    """The layer room of a module: its first package under pyimagesearch (or top module)."""
    parts = module.split(".")[1:]
    return parts[0] if parts else ""


def _layer(module: str) -> int:
    room = _room(module)
    for index, rooms in enumerate(LAYERS):
        if room in rooms:
            return index
    raise AssertionError(f"{module}: room {room!r} is in no layer of LAYERS")


def _target(name: str) -> str | None:
    """The project module an imported name resolves to (a module, or the package)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, imported project module, inside a function) for every import of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for child in ast.walk(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    inside.add(id(child))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith("pyimagesearch"):
                target = _target(name)
                if target:
                    found.append((node.lineno, target, id(node) in inside))
    return found


GRAPH = {module: _imports(path) for module, path in MODULES.items()}


def test_every_module_sits_in_a_layer():
    for module in MODULES:
        _layer(module)


def test_no_import_points_up_or_across():
    offenders = []
    for module, imports in GRAPH.items():
        for line, target, _ in imports:
            here, there = _layer(module), _layer(target)
            if there > here:
                offenders.append(f"{MODULES[module]}:{line}: {module} imports {target}, "
                                 f"a higher layer")
            pair = {_room(module), _room(target)}
            if any(pair == set(rooms) for rooms in SIDE_BY_SIDE):
                offenders.append(f"{MODULES[module]}:{line}: {module} imports {target}, "
                                 f"which stands beside it")
    assert offenders == []


def test_no_circle():
    edges = {module: sorted({t for _, t, _ in imports if t != module})
             for module, imports in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in edges.get(module, []):
            if state.get(target) == 1:
                circle = stack[stack.index(target):] + [target]
                lines = [f"{MODULES[a]}:{next(n for n, t, _ in GRAPH[a] if t == b)}"
                         for a, b in itertools.pairwise(circle)]
                circles.append(" -> ".join(circle) + f" ({', '.join(lines)})")
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert circles == []


def test_an_import_inside_a_function_says_what_it_spares():
    unexplained = []
    for module, imports in GRAPH.items():
        lines = MODULES[module].read_text(encoding="utf-8").splitlines()
        for line, target, inside in imports:
            if not inside:
                continue
            above = lines[line - 2].strip() if line >= 2 else ""
            if not (above.startswith("#") and any(r in above.lower()
                                                  for r in DEFERRED_REASONS)):
                unexplained.append(f"{MODULES[module]}:{line}: {target}")
    assert unexplained == []

"""How service's folders depend on each other, read from the imports in their source (AST)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[2] / "service"


def imported_modules(path: Path) -> Iterator[str]:
    """Every module a file imports, at any depth (imports under TYPE_CHECKING included)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def folder_of(module: str) -> str | None:
    """The part of service/ a module lives in: its top-level folder, or itself when it is a
    module at the top (`runtime.py`); None when it is not in service/."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "service":
        return None
    if (SERVICE / parts[1]).is_dir():
        return parts[1] if len(parts) >= 3 else None
    return f"{parts[1]}.py" if (SERVICE / f"{parts[1]}.py").exists() else None


def folder_imports() -> dict[str, set[str]]:
    """For each top-level folder and module of service/, the other ones its code imports."""
    graph: dict[str, set[str]] = {}
    folders = {p.name: sorted(p.rglob("*.py")) for p in SERVICE.iterdir() if (p / "__init__.py").exists()}
    modules = {p.name: [p] for p in SERVICE.glob("*.py") if p.name != "__init__.py"}
    for name, paths in sorted({**folders, **modules}.items()):
        targets = graph.setdefault(name, set())
        for path in paths:
            for module in imported_modules(path):
                other = folder_of(module)
                if other is not None and other != name:
                    targets.add(other)
    return graph


def loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """The folders that reach themselves through the import graph, each loop named once."""
    found = []
    for start in sorted(graph):
        path, seen = [start], set()

        def walk(node: str, path: list[str] = path, seen: set[str] = seen, start: str = start) -> None:
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    found.append([*path, start])
                elif nxt not in path and nxt not in seen and nxt > start:
                    seen.add(nxt)
                    path.append(nxt)
                    walk(nxt)
                    path.pop()

        walk(start)
    return found


def test_tracking_imports_nothing_from_pipeline() -> None:
    """No module of service/tracking imports service.pipeline: tracking is told the stages it records."""
    offenders = sorted(
        f"{path.relative_to(SERVICE)} imports {module}"
        for path in (SERVICE / "tracking").rglob("*.py")
        for module in imported_modules(path)
        if module == "service.pipeline" or module.startswith("service.pipeline.")
    )
    assert offenders == []


def test_no_import_loop_between_folders() -> None:
    """No top-level folder or module of service/ reaches itself through the others' imports."""
    assert loops(folder_imports()) == []


def test_tracking_is_composed_not_inherited() -> None:
    """No class of service/tracking subclasses a tracking class that does work (has async methods):
    the tracker's parts are collaborators, not layers of one object."""
    tracking = SERVICE / "tracking"
    classes = [
        (path.name, node)
        for path in tracking.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.ClassDef)
    ]
    working = {
        node.name for _, node in classes if any(isinstance(n, ast.AsyncFunctionDef) for n in node.body)
    }
    offenders = sorted(
        f"{name}: {node.name}({base.id})"
        for name, node in classes
        for base in node.bases
        if isinstance(base, ast.Name) and base.id in working
    )
    assert offenders == []

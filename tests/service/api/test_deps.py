"""Routes receive the service's parts as typed dependencies, never from the app's state."""

from __future__ import annotations

import ast
from pathlib import Path

import service

SERVICE = Path(service.__file__).parent
# The app factory stores the one `ServiceParts`; `deps.parts_of` alone reads it back.
ALLOWED = {SERVICE / "app.py", SERVICE / "api" / "deps.py"}


def _is_app(node: ast.AST) -> bool:
    """`app` or `<anything>.app`."""
    return (isinstance(node, ast.Name) and node.id == "app") or (
        isinstance(node, ast.Attribute) and node.attr == "app"
    )


def _reads_app_state(node: ast.AST) -> bool:
    """`app.state` / `request.app.state`, or `getattr(request.app, "state")` (a request's own
    `request.state` is not the app's)."""
    if isinstance(node, ast.Attribute) and node.attr == "state":
        return _is_app(node.value)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
        if len(node.args) < 2:
            return False
        target, name = node.args[:2]
        return _is_app(target) and isinstance(name, ast.Constant) and name.value == "state"
    return False


def test_only_the_app_factory_and_deps_touch_app_state() -> None:
    """No module of the service but `app.py` and `api/deps.py` reads or writes `app.state`."""
    offenders = [
        f"{path.relative_to(SERVICE.parent)}:{node.lineno}"
        for path in sorted(SERVICE.rglob("*.py"))
        if path not in ALLOWED
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.expr) and _reads_app_state(node)
    ]
    assert offenders == []

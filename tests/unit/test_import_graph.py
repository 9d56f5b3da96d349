"""The import graph's rules, read from the source (nothing is imported):

* no module of ``pixdrop.http`` is in an import cycle with another one of them;
* no module of ``pixdrop.services`` imports a web framework (``fastapi``, ``starlette``).

Every import statement counts, also those inside functions or ``if TYPE_CHECKING:``: an import
deferred to dodge a cycle is still a cycle in the design. Importing ``a.b.c`` runs ``a`` and
``a.b`` first, so it is an edge to each of them too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pixdrop

ROOT = Path(pixdrop.__file__).parent
WEB_FRAMEWORKS = frozenset({"fastapi", "starlette"})


def _module_name(path: Path) -> str:
    parts = ("pixdrop", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _sources() -> dict[str, Path]:
    """Every module of the package, by dotted name (a package by its own name)."""
    return {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _imported(name: str, path: Path) -> Iterator[str]:
    """The absolute names every import statement of module *name* (at *path*) reaches for."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # ``from pixdrop.http import tus`` imports the submodule ``pixdrop.http.tus``.
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _with_parents(name: str) -> Iterator[str]:
    parts = name.split(".")
    for end in range(1, len(parts) + 1):
        yield ".".join(parts[:end])


@cache
def _graph() -> dict[str, frozenset[str]]:
    """Module name to the package modules it makes Python run."""
    sources = _sources()
    return {
        name: frozenset(
            target
            for imported in _imported(name, path)
            for target in _with_parents(imported)
            if target in sources and target != name
        )
        for name, path in sources.items()
    }


def _cycles(graph: dict[str, frozenset[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return found


def _in(package: str, name: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_graph_sees_the_http_modules() -> None:
    graph = _graph()
    assert "pixdrop.http.tus" in graph
    assert "pixdrop.http.state" in graph["pixdrop.http.tus"]


def test_a_cycle_is_found() -> None:
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset()}
    assert _cycles(graph) == [{"a", "b", "c"}]


def test_no_http_module_is_in_an_import_cycle_with_another() -> None:
    tangled = []
    for component in _cycles(_graph()):
        http = sorted(name for name in component if _in("pixdrop.http", name))
        if len(http) > 1:
            tangled.append(http)
    assert tangled == [], f"pixdrop.http modules importing each other in a loop: {tangled}"


def test_no_service_imports_a_web_framework() -> None:
    offenders = {
        name: sorted(
            {imported.split(".")[0] for imported in _imported(name, path)} & WEB_FRAMEWORKS
        )
        for name, path in _sources().items()
        if _in("pixdrop.services", name)
    }
    assert {name: found for name, found in offenders.items() if found} == {}

"""The package's import graph has no cycles, and every import points down a declared order of layers.

Every module under ``src/yokedcache`` is parsed with ``ast`` -- nothing is imported, so the test
needs no optional extra -- and every import statement counts: at module level, inside functions
(the lazy imports of optional extras and of heavy modules) and under ``if TYPE_CHECKING:``.
Type-only imports count because a type names a dependency as surely as a call does: a module
that needs ``YokedCache`` for its hints depends on the facade, and a cycle hidden behind
``TYPE_CHECKING`` is one a refactoring turns real. Where two modules need each other's types,
one of them declares a ``typing.Protocol`` instead (``telemetry/observers.py``,
``telemetry/switch.py``, ``backends/autopipeline.py``).

What an edge is: ``from . import semconv`` is an edge to the submodule ``telemetry.semconv``
(the name imported is a module); ``from .base import Backend`` an edge to ``backends.base``. A
package's ``__init__`` is a module of its own (``yokedcache.telemetry``). Importing a submodule
is not counted as importing its parent package: Python runs the parent's ``__init__`` first,
but that is the parent's dependency, not the importer's.
"""

from __future__ import annotations

import ast
import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = "yokedcache"

#: The layers, lowest first. A module may import modules of its own layer or of lower ones,
#: never of a higher one; a pattern with ``*`` covers a package's modules. The facade
#: (``cache``) sits above everything it uses, and what uses the cache sits above it.
LAYERS: list[list[str]] = [
    # foundations: import nothing of ours but each other
    ["yokedcache._version", "yokedcache._text", "yokedcache._extras", "yokedcache._glob", "yokedcache._urls",
     "yokedcache.errors", "yokedcache.validation", "yokedcache.percentiles", "yokedcache.window",
     "yokedcache.serializers", "yokedcache.cache_keys"],
    # what the cache is built from: storage, per-operation telemetry (OTel API only), the breaker
    ["yokedcache.backends", "yokedcache.backends.*", "yokedcache.telemetry", "yokedcache.telemetry.*",
     "yokedcache.resilience"],
    # SDK readers and exporters, the health report, the configuration
    ["yokedcache.exporters", "yokedcache.exporters.*", "yokedcache.health", "yokedcache.config",
     "yokedcache.cache_aside"],
    # the facade
    ["yokedcache.cache"],
    # what reads a running cache: alert rules and notifiers, the demo's workload
    ["yokedcache.alerting", "yokedcache.alerting.*", "yokedcache.demo"],
    # the HTTP server, readiness and the status page (which shows firing alerts)
    ["yokedcache.server", "yokedcache.server.*"],
    # the documented API: the package root, the monitoring compatibility API, the instrumentor
    ["yokedcache", "yokedcache.monitoring", "yokedcache.monitoring.*", "yokedcache.instrumentor"],
    # the command line
    ["yokedcache._cli_common", "yokedcache.bench", "yokedcache.cli", "yokedcache.__main__"],
]  # fmt: skip

#: Third-party packages that only the optional extras install (see pyproject.toml).
OPTIONAL = ("opentelemetry.sdk", "opentelemetry.exporter", "prometheus_client", "statsd", "redis")


@dataclass(frozen=True)
class Import:
    source: str
    target: str  # a module of ours, or the dotted name of a third-party module
    line: int
    at_import_time: bool  # module level, not inside a function and not under TYPE_CHECKING


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (file, is a package __init__)}`` for every module of the package."""
    found = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(node: ast.AST, at_import_time: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement below ``node``, with whether it runs when the module is imported."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, at_import_time
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _statements(child, False)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _statements(ast.Module(body=[stmt], type_ignores=[]), False)
            for stmt in child.orelse:
                yield from _statements(ast.Module(body=[stmt], type_ignores=[]), at_import_time)
        else:
            yield from _statements(child, at_import_time)


def _ours(name: str) -> str:
    """The module of ours that ``name`` (a module, or a name inside one) belongs to."""
    while name not in MODULES:
        name = name.rsplit(".", 1)[0]
    return name


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        package = ".".join(base + ([node.module] if node.module else []))
    else:
        package = node.module or ""
    if package != ROOT and not package.startswith(ROOT + "."):
        return [package]
    # ``from package import name``: an edge to the submodule when ``name`` is one
    return [f"{package}.{alias.name}" if f"{package}.{alias.name}" in MODULES else package for alias in node.names]


def _imports() -> list[Import]:
    found = []
    for module, (path, is_package) in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, at_import_time in _statements(tree, True):
            for target in _targets(module, is_package, node):
                if target == ROOT or target.startswith(ROOT + "."):
                    target = _ours(target)
                    if target == module:
                        continue
                found.append(Import(module, target, node.lineno, at_import_time))
    return found


IMPORTS = _imports()
EDGES = {(i.source, i.target) for i in IMPORTS if i.target in MODULES}


def _layer(module: str) -> int:
    matches = {n for n, patterns in enumerate(LAYERS) for p in patterns if fnmatch.fnmatchcase(module, p)}
    assert len(matches) == 1, f"{module} is in {len(matches)} layers of LAYERS, not one: place it in one"
    return matches.pop()


def _strongly_connected(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the strongly connected components of the graph."""
    graph: dict[str, list[str]] = {m: [] for m in MODULES}
    for source, target in sorted(edges):
        graph[source].append(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            for j in range(i, len(graph[node])):
                successor = graph[node][j]
                if successor not in index:
                    work.append((node, j + 1))
                    work.append((successor, 0))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
    return components


def test_the_graph_is_read_from_every_module():
    assert len(MODULES) > 40 and "yokedcache.cache" in MODULES
    # Three kinds of import the graph must see: lazy (in a function), type-only, and relative.
    assert Import("yokedcache.cli", "yokedcache.demo", 0, False) in {
        Import(i.source, i.target, 0, i.at_import_time) for i in IMPORTS
    }
    assert any(not i.at_import_time and i.source == "yokedcache.alerting.manager" and i.target == "yokedcache.cache"
               for i in IMPORTS)  # fmt: skip
    assert ("yokedcache.telemetry.instrumentation", "yokedcache.telemetry.semconv") in EDGES  # from . import semconv


def test_every_module_is_in_exactly_one_layer():
    for module in MODULES:
        _layer(module)


def test_there_are_no_import_cycles():
    cycles = [c for c in _strongly_connected(EDGES) if len(c) > 1]
    assert cycles == [], f"import cycles: {cycles}"


def test_no_module_imports_from_a_higher_layer():
    upward = sorted(
        f"{i.source}:{i.line} imports {i.target} (layer {_layer(i.source)} -> {_layer(i.target)})"
        for i in IMPORTS
        if i.target in MODULES and _layer(i.target) > _layer(i.source)
    )
    assert upward == [], "imports against the layer order:\n" + "\n".join(upward)


def test_nothing_below_the_facade_imports_it():
    facade = _layer("yokedcache.cache")
    below = sorted(
        f"{source} -> {target}"
        for source, target in EDGES
        if target in ("yokedcache", "yokedcache.cache") and _layer(source) < facade
    )
    assert below == []


def _loaded_at_import(start: str) -> set[str]:
    """Our modules that ``import <start>`` runs (module-level imports, followed transitively)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo.extend(".".join(parts[:n]) for n in range(1, len(parts)))  # parent packages run first
        todo.extend(i.target for i in IMPORTS if i.source == module and i.at_import_time and i.target in MODULES)
    return seen


@pytest.mark.parametrize(
    "start", ["yokedcache", "yokedcache.monitoring", "yokedcache.alerting", "yokedcache.telemetry"]
)
def test_importing_the_core_loads_no_optional_package(start):
    """The core install is ``opentelemetry-api`` alone: ``import yokedcache`` (and the documented
    ``from yokedcache.monitoring import CacheMetrics``) must work without any extra; the SDK,
    exporters and drivers are imported where they are used."""
    loaded = _loaded_at_import(start)
    offending = sorted(
        f"{i.source}:{i.line} imports {i.target}"
        for i in IMPORTS
        if i.source in loaded and i.at_import_time and i.target.startswith(OPTIONAL)
    )
    assert offending == []


def test_telemetry_uses_the_opentelemetry_api_only():
    """Per-operation recording is library code: the application brings the SDK, if any."""
    sdk = sorted(
        f"{i.source}:{i.line} imports {i.target}"
        for i in IMPORTS
        if i.source.startswith("yokedcache.telemetry") and i.target.startswith(OPTIONAL)
    )
    assert sdk == []

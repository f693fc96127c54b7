"""Nothing outside ``cache.py`` reads or writes a private member of a cache.

Health, alerting, the status page, the demo and the command line work through the cache's public
seam (``closed``, ``event_loop``, ``probe``, ``state``, ``pool_stats``, ``twin_backend``,
``usage_snapshot``, ...), so the facade can change its insides without breaking them unseen.

Every module under ``src/yokedcache`` except ``cache.py`` is parsed with ``ast`` (nothing is
imported). Python has no types at this point, so which expressions hold a cache is a heuristic
over names, chosen to over-report (a false alarm costs a rename; a miss costs the seam):

- a name, or the last attribute of a dotted name, that is ``cache`` or ends in ``cache``
  (``cache``, ``self.cache``, ``self._cache``, ``own_cache``);
- a parameter or plain variable annotated with a type that mentions ``YokedCache``;
- a loop or comprehension variable over something whose name ends in ``caches``
  (``for c in caches``, ``c for c in group.caches``), where short names like ``c`` live.

The last two hold for the whole module, not only their own function: again over-reporting.
Flagged on such an expression, or on one of its parts (``cache.backend``): ``x._name`` (read,
write or call) and ``getattr``/``setattr``/``hasattr``/``delattr`` with a literal ``"_name"``.
A part's private member is the part's own business, reached through the cache's back door.
Dunders (``__class__``) are not private.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "yokedcache"
FACADE = SRC / "cache.py"
REFLECTION = ("getattr", "setattr", "hasattr", "delattr")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _last_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _bound_names(target: ast.expr) -> list[str]:
    return [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]


def _cache_variables(tree: ast.AST) -> set[str]:
    """Names the module uses for caches beyond the ``...cache`` spelling (see the module docstring)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None and "YokedCache" in ast.unparse(node.annotation):
            names.add(node.arg)
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)  # not ``self.caches: list[YokedCache]``
            and "YokedCache" in ast.unparse(node.annotation)
        ):
            names.add(node.target.id)
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            iterated = _last_name(node.iter)
            if iterated is not None and iterated.endswith("caches"):
                names.update(_bound_names(node.target))
    return names


def _holds_a_cache(node: ast.expr, variables: set[str]) -> bool:
    name = _last_name(node)
    return name is not None and (name.endswith("cache") or (isinstance(node, ast.Name) and name in variables))


def _reaches_a_cache(node: ast.expr, variables: set[str]) -> bool:
    """``node`` is a cache or one of its parts (``cache.backend``, ``self.cache.telemetry.counters``)."""
    while True:
        if _holds_a_cache(node, variables):
            return True
        if not isinstance(node, ast.Attribute):
            return False
        node = node.value


def _touches_a_private_member(node: ast.AST, variables: set[str]) -> bool:
    if isinstance(node, ast.Attribute):
        return _is_private(node.attr) and _reaches_a_cache(node.value, variables)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in REFLECTION
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
        and _is_private(node.args[1].value)
        and _reaches_a_cache(node.args[0], variables)
    )


def private_reads(source: str) -> list[str]:
    """``"line: expression"`` for every access to a cache's private member in ``source``."""
    tree = ast.parse(source)
    variables = _cache_variables(tree)
    found = sorted(
        (node.lineno, node.col_offset, ast.unparse(node))
        for node in ast.walk(tree)
        if _touches_a_private_member(node, variables)
    )
    return [f"{line}: {text}" for line, _, text in found]


def test_the_heuristic_finds_each_spelling_of_a_cache():
    source = """
def f(cache, other: YokedCache, group):
    mine: YokedCache | None = None
    cache._loop = None
    self.cache._guard.call()
    self._cache._usage
    other._closed
    mine._closed
    [c._current_usage() for c in group.caches]
    for each in caches:
        each._bound_loop
    getattr(cache, "_make_backend")
    cache.backend._pool
"""
    assert [line.split(": ", 1)[1] for line in private_reads(source)] == [
        "cache._loop",
        "self.cache._guard",
        "self._cache._usage",
        "other._closed",
        "mine._closed",
        "c._current_usage",
        "each._bound_loop",
        "getattr(cache, '_make_backend')",
        "cache.backend._pool",
    ]


def test_the_heuristic_leaves_public_members_and_other_objects_alone():
    source = """
def f(self, cache, conn):
    self.caches: list[YokedCache] = []
    cache.usage_snapshot(); cache.event_loop; cache.__class__
    self._loop; conn._pool; getattr(cache, "name")
    for c in connections:
        c._x
"""
    assert private_reads(source) == []


def test_no_module_outside_the_facade_touches_a_private_member_of_a_cache():
    offending = [
        f"{path.relative_to(SRC.parent)}:{hit}"
        for path in sorted(SRC.rglob("*.py"))
        if path != FACADE
        for hit in private_reads(path.read_text(encoding="utf-8"))
    ]
    assert offending == [], "use the cache's public seam (cache.py) instead:\n" + "\n".join(offending)

"""Keys for ``@cache.cached``: the same call gives the same key in every process, forever.

A key is ``{module}.{qualname}(`` + the arguments, encoded + ``)``, under the cache's
``key_prefix``. Arguments are bound to the signature first (defaults applied), so
``f(1, b=2)``, ``f(a=1, b=2)`` and ``f(1, 2)`` are one key. The encoding never uses ``hash()``
(randomised per process) nor ``repr()`` of arbitrary objects (an address): only values whose
meaning survives a restart are keyable, each with a type mark, so ``1``, ``1.0``, ``True`` and
``"1"`` are four keys:

========================  ===================================================
``None`` / ``True`` / ``False``   ``N`` / ``T`` / ``F``
``int``                   ``i`` + decimal digits (``i42``, ``i-7``)
``float``                 ``f`` + ``repr`` (shortest round-trip form: ``f0.5``, ``finf``)
``str``                   ``s`` + length + ``:`` + the text (``s5:hello``)
``bytes``                 ``b`` + length + ``:`` + hex (``b2:ff00``)
``tuple`` / ``list``      ``(`` items ``,`` separated ``)`` / ``[ ... ]``
``dict``                  ``{`` ``key=value`` pairs sorted by encoded key ``}``
``set`` / ``frozenset``   ``<`` items sorted by encoding ``>``
``enum.Enum`` member      ``e`` + length + ``:`` + ``module.qualname.name``
========================  ===================================================

Bound arguments are joined with ``,`` in signature order; ``*args`` is one tuple and
``**kwargs`` one dict. An argument list longer than :data:`MAX_READABLE` characters is replaced
by ``#`` + its SHA-256 in hex, so a key stays short in Redis. Anything else raises
:class:`TypeError` naming the argument, at call time (``key=`` takes a callable for those).
"""

from __future__ import annotations

import enum
import hashlib
import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_READABLE", "encode", "key_builder"]

#: Longest encoded argument list kept readable in the key; longer ones are hashed.
MAX_READABLE = 128


class _Unkeyable(TypeError):
    """A value the encoding refuses (re-raised naming the argument it was found in)."""


def encode(value: Any) -> str:
    """The stable text of ``value`` (the table above); :class:`TypeError` if it has none."""
    kind = type(value)
    if kind is str:
        return f"s{len(value)}:{value}"
    if kind is int:
        return f"i{value}"
    encoder = _ENCODERS.get(kind)
    if encoder is None:
        if isinstance(value, enum.Enum):
            name = f"{kind.__module__}.{kind.__qualname__}.{value.name}"
            return f"e{len(name)}:{name}"
        raise _Unkeyable(f"{kind.__name__} has no stable key (pass key= to the decorator)")
    return encoder(value)


def _sequence(open_: str, close: str) -> Callable[[Any], str]:
    return lambda items: open_ + ",".join(map(encode, items)) + close


def _dict(value: dict[Any, Any]) -> str:
    return "{" + ",".join(sorted(f"{encode(k)}={encode(v)}" for k, v in value.items())) + "}"


def _set(value: Any) -> str:
    return "<" + ",".join(sorted(map(encode, value))) + ">"


_ENCODERS: dict[type, Callable[[Any], str]] = {
    type(None): lambda _: "N",
    bool: lambda v: "T" if v else "F",
    float: lambda v: f"f{v!r}",
    bytes: lambda v: f"b{len(v)}:{v.hex()}",
    tuple: _sequence("(", ")"),
    list: _sequence("[", "]"),
    dict: _dict,
    set: _set,
    frozenset: _set,
}


def key_builder(fn: Callable[..., Any]) -> Callable[[tuple[Any, ...], dict[str, Any]], str]:
    """``build(args, kwargs) -> key`` for ``fn``'s calls (see the module docstring).

    The signature is examined once, here. A call that passes exactly the positional parameters,
    with no keywords, skips ``Signature.bind`` (about 2 µs); one str or int argument is a single
    f-string. That is the hot path of a hit (``benchmarks/cache_aside.py``).
    """
    function = f"{fn.__module__}.{fn.__qualname__}"
    head = function + "("
    signature = inspect.signature(fn)
    params = list(signature.parameters.values())
    # A method's self/cls is not keyed: the instance has no stable identity across processes.
    skip = 1 if params and params[0].name in ("self", "cls") else 0
    arity = len(params) if all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params) else -1
    names = tuple(p.name for p in params)
    bind = signature.bind
    single = arity - skip == 1

    def build(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if not kwargs and len(args) == arity:
            if single:
                value = args[skip]
                kind = type(value)
                if kind is str:
                    return f"{head}s{len(value)}:{value})" if len(value) < MAX_READABLE - 8 else _long(head, value)
                if kind is int:
                    return f"{head}i{value})"
            given: Any = names
            values: Any = args
        else:
            bound = bind(*args, **kwargs)  # a wrong call raises the TypeError the call would
            bound.apply_defaults()
            given, values = tuple(bound.arguments), tuple(bound.arguments.values())
        try:
            text = ",".join(map(encode, values[skip:] if skip else values))
        except _Unkeyable:
            raise _naming(function, given[skip:], values[skip:]) from None
        if len(text) > MAX_READABLE:
            text = "#" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        return head + text + ")"

    build.function = function  # type: ignore[attr-defined]
    build.skips_self = bool(skip)  # type: ignore[attr-defined]
    return build


def _long(head: str, value: str) -> str:
    """A long single str argument: the general rule (hashed past MAX_READABLE)."""
    text = encode(value)
    if len(text) > MAX_READABLE:
        text = "#" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return head + text + ")"


def _naming(function: str, names: Any, values: Any) -> TypeError:
    """The TypeError naming the first argument that has no stable key."""
    for name, value in zip(names, values, strict=True):
        try:
            encode(value)
        except _Unkeyable as exc:
            return TypeError(f"{function}: argument {name!r}: {exc}")
    return TypeError(f"{function}: an argument has no stable key")

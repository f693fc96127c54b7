"""Checks of settings and names: numbers, ports, flags, strings, hosts, metric and label names, URLs.

The same few checks used to be written by hand in a dozen constructors, and each copy could
drift (a ``bool`` let through as a number, a NaN that passes ``value <= 0``). Here each check
exists once, and every caller still raises its own exact message: people and tests match on
those texts (tests/test_validation.py pins them), so the wording is an argument, not a choice
made here.

Two message shapes exist, and both are kept:

- *split* (``kind`` given): a value of the wrong type raises ``TypeError("<field>: expected
  <kind>, got <type name>")``, a value out of range ``ValueError("<field>: <rule>, got <repr>")``
  (``CacheConfig``, ``CacheMetrics``, ``MemoryBackend``, the cache's ``ttl``);
- *single* (``kind=None``): whatever is wrong raises ``ValueError("<field>: <rule>, got <repr>")``
  (StatsD, the HTTP server, OTLP, the Redis backends).

:func:`host` has two shapes of its own, for the same reason: StatsD's ``TypeError`` quotes the
value, SMTP's ``ValueError`` does not.

A ``bool`` is never a number here: ``True`` is an ``int`` to Python but never a port, a count or
a number of seconds to a user. A NaN fails every range (it compares false with any bound).

A bad value is shown through :func:`quoted` (from :mod:`._text`, which ``_urls`` shares): at most
its first 100 characters, so a 10 MB name never makes a 10 MB message.

This module imports nothing else of yokedcache but :mod:`._urls` (URL syntax and URLs shown in
errors) and :mod:`._text`, so every layer may use it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import urlsplit

from ._text import quoted
from ._urls import check_redis_url, safe_url

__all__ = [
    "OTHER_NAME",
    "RESERVED_NAMES",
    "boolean",
    "cache_name",
    "env_flag",
    "env_port",
    "host",
    "http_url",
    "instrument_name",
    "is_int",
    "is_number",
    "label_names",
    "number",
    "port",
    "prometheus_name",
    "quoted",
    "redis_url",
    "string",
    "tag_name",
]

#: ``cache.name``: a fixed label on every series and span, so short and free of separators.
CACHE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
#: Where ``cache.name`` values beyond the name cap go (``telemetry/names.py``): one series, one
#: page row, one health name. A user may not pick it, or their cache would merge with the overflow.
OTHER_NAME = "_other"
#: Cache names the library gives a meaning of its own; refused as user names.
RESERVED_NAMES = frozenset({OTHER_NAME})
#: An OpenTelemetry instrument name (the API's own rule). ``fullmatch``: "$" would admit a final "\n".
INSTRUMENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_./\-]{0,254}")
#: Prometheus metric-name parts and label names (without the ``:`` reserved for recording rules).
PROMETHEUS_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
#: Label names Prometheus gives a meaning of its own: a histogram's ``le`` would collide with
#: the bucket label (the exposition then fails to parse), ``quantile`` is a summary's.
RESERVED_TAGS = {"le": "a histogram's bucket bound", "quantile": "a summary's quantile"}


# -- numbers ------------------------------------------------------------------------------------
def is_number(value: object) -> bool:
    """An ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int(value: object) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def _within(value: float, minimum: float | None, maximum: float | None, allow_zero: bool, finite: bool) -> bool:
    # "not value >= minimum" rather than "value < minimum": a NaN must fail, not slip through.
    if finite and not math.isfinite(value):
        return False
    if minimum is not None and not value >= minimum:
        return False
    if maximum is not None and not value <= maximum:
        return False
    return allow_zero or value != 0


def number(
    name: str,
    value: object,
    *,
    rule: str = "",
    kind: str | None = None,
    integer: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    allow_zero: bool = True,
    finite: bool = False,
    allow_none: bool = False,
) -> None:
    """Check that ``value`` is a number (an int when ``integer``) in ``[minimum, maximum]``.

    ``allow_zero=False`` with ``minimum=0`` means "positive"; ``finite`` rejects infinities and
    NaN; ``allow_none`` lets ``None`` through. ``rule`` words the range ("must be in (0, 1]",
    "expected an int between 1 and 65535"); ``kind`` selects the split message shape (see the
    module docstring) and words the type ("a number", "an int or None").
    """
    if value is None and allow_none:
        return
    if not (is_int(value) if integer else is_number(value)):
        if kind is None:
            raise ValueError(f"{name}: {rule}, got {quoted(value)}")
        raise TypeError(f"{name}: expected {kind}, got {type(value).__name__}")
    if not _within(value, minimum, maximum, allow_zero, finite):  # type: ignore[arg-type]
        raise ValueError(f"{name}: {rule}, got {quoted(value)}")


def port(name: str, value: object, *, allow_zero: bool = False, rule: str | None = None) -> None:
    """A TCP/UDP port as an int: 1-65535, or 0-65535 with ``allow_zero`` (0: the OS picks one)."""
    low = 0 if allow_zero else 1
    number(name, value, rule=rule or f"expected an int between {low} and 65535", integer=True, minimum=low,
           maximum=65535)  # fmt: skip


def env_port(variable: str, default: int) -> int:
    """The int in environment variable ``variable`` (``default`` when unset), not yet range-checked.

    Only the parsing is here: the range is checked where the port is used, whose message names
    the setting (``port``, ``smtp port``), as it does for a port passed in code.
    """
    text = os.environ.get(variable, str(default))
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{variable}: expected a port number, got {quoted(text)}") from None


def env_flag(variable: str, default: bool) -> bool:
    """A flag read from environment variable ``variable``: true/false, 1/0, yes/no, on/off.

    Spelled out both ways, so that neither "no" nor a typo reads as "on"; anything else raises.
    """
    raw = os.environ.get(variable)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{variable}: expected true or false, got {quoted(raw)}")


# -- flags and strings ----------------------------------------------------------------------------
def boolean(name: str, value: object, *, allow_none: bool = False) -> None:
    """A real ``bool``: ``"no"`` or ``0`` would read as a decision the user never made."""
    if value is None and allow_none:
        return
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool{' or None' if allow_none else ''}, got {type(value).__name__}")


def string(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a str{' or None' if allow_none else ''}, got {type(value).__name__}")


def host(name: str, value: object, *, rule: str | None = None) -> None:
    """A host name or address: a non-empty ``str`` (resolving it is the connection's business).

    Without ``rule``: ``TypeError("<name>: expected a non-empty str, got <repr>")`` (StatsD);
    with it: ``ValueError("<name>: <rule>")``, the value unquoted (SMTP).
    """
    if isinstance(value, str) and value:
        return
    if rule is None:
        raise TypeError(f"{name}: expected a non-empty str, got {quoted(value)}")
    raise ValueError(f"{name}: {rule}")


# -- names ------------------------------------------------------------------------------------------
def cache_name(name: str, value: object) -> None:
    """A ``cache.name``: it becomes a label, so it must be a short fixed word, never data."""
    string(name, value)
    if not CACHE_NAME.fullmatch(value):  # type: ignore[arg-type]
        raise ValueError(f"{name}: 1-64 letters, digits or . _ - : (a fixed label, never data), got {quoted(value)}")
    if value in RESERVED_NAMES:
        raise ValueError(f"{name}: {value!r} is reserved (names beyond the name cap report as it); pick another")


def instrument_name(value: object) -> None:
    """An application metric's name, checked before the SDK sees it (the SDK only logs)."""
    if not isinstance(value, str) or not INSTRUMENT_NAME.fullmatch(value):
        raise ValueError(
            f"metric: {quoted(value)} is not a valid name (a letter, then letters, digits, '_', '.', '-' or '/', "
            "at most 255 characters)"
        )


def tag_name(tag: str) -> None:
    """Reject tag names no collector can export faithfully, as bad metric names are rejected."""
    if not tag:
        raise ValueError("tags: a tag name must not be empty")
    if tag in RESERVED_TAGS:
        raise ValueError(f"tags: {tag!r} is reserved by Prometheus for {RESERVED_TAGS[tag]}; rename the tag")
    if tag.startswith("__"):
        raise ValueError(f"tags: {quoted(tag)} starts with '__', which Prometheus reserves for internal labels")


def prometheus_name(name: str, value: object, *, allow_none: bool = False) -> None:
    """A namespace or subsystem: it becomes part of every series name."""
    if value is None and allow_none:
        return
    if not isinstance(value, str) or not PROMETHEUS_NAME.fullmatch(value):
        raise ValueError(f"{name}: must match [a-zA-Z_][a-zA-Z0-9_]*, got {quoted(value)}")


def label_names(name: str, labels: Mapping[Any, Any]) -> dict[str, str]:
    """Constant labels: valid, non-reserved names with ``str`` values; returns them as a new dict."""
    for key, value in labels.items():
        if not isinstance(key, str) or not PROMETHEUS_NAME.fullmatch(key) or key.startswith("__"):
            raise ValueError(f"{name}: {quoted(key)} is not a valid Prometheus label name")
        if not isinstance(value, str):
            raise TypeError(f"{name}: value of {quoted(key)} must be a str, got {type(value).__name__}")
    return dict(labels)


# -- URLs ------------------------------------------------------------------------------------------
def redis_url(name: str, value: object) -> str:
    """A Redis URL's form (:func:`yokedcache._urls.check_redis_url`): errors name ``name``, never a password."""
    return check_redis_url(value, name)


def http_url(name: str, value: object) -> str:
    """An ``http://`` or ``https://`` URL with a host (a webhook's); errors show only its scheme and
    host (:func:`yokedcache._urls.safe_url`): Slack-style webhook URLs carry their token in the path."""
    string(name, value)
    url = cast(str, value)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"{name}: not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name}: expected an http:// or https:// URL, got one for {safe_url(url)}")
    return url

"""The process-wide switch behind ``YokedCacheInstrumentor``.

yokedcache is natively instrumented: caches record into the global OpenTelemetry providers
with no instrumentor at all, which is what a library built on ``opentelemetry-api`` should do.
The switch exists so the auto-instrumentation contract still holds:

- ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=yokedcache`` (or ``*``) turns it off, as it would a
  contrib instrumentor;
- ``YokedCacheInstrumentor().instrument(tracer_provider=..., meter_provider=..., hooks...)``
  re-points every cache that follows the global providers, including caches created earlier;
- ``uninstrument()`` puts back what was there before ``instrument()``: by default the native
  telemetry on the global providers, as a contrib instrumentor's uninstrument restores the
  library it patched.

Caches given providers explicitly (``CacheConfig(meter_provider=..., metrics=CacheMetrics(...))``)
are the application's explicit choice and do not follow the switch.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["RequestHook", "ResponseHook", "Settings", "configure", "current", "follow", "is_disabled_by_environment"]

#: ``request_hook(span, operation, key)``: called after the span starts (key is the cache key, or None).
RequestHook = Callable[["Span", str, "str | None"], None]
#: ``response_hook(span, operation, result)``: called before a successful span ends.
ResponseHook = Callable[["Span", str, Any], None]

INSTRUMENTATION_NAME = "yokedcache"


class Follower(Protocol):
    """A cache's telemetry that re-resolves its providers when the switch flips:
    ``Instrumentation`` (``instrumentation.py``). A protocol, not an import of that class:
    instrumentation.py reads the switch, and importing it back would make a cycle."""

    def rebind(self) -> None: ...


def is_disabled_by_environment() -> bool:
    """True when ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` names yokedcache or ``*``."""
    names = {n.strip() for n in os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")}
    return INSTRUMENTATION_NAME in names or "*" in names


@dataclass(frozen=True)
class Settings:
    enabled: bool
    tracer_provider: Any = None
    meter_provider: Any = None
    request_hook: RequestHook | None = None
    response_hook: ResponseHook | None = None
    capture_keys: bool = False


_lock = threading.Lock()
_explicit: Settings | None = None  # set by instrument()/uninstrument(); None = follow the environment
_followers: weakref.WeakSet[Follower] = weakref.WeakSet()


def current() -> Settings:
    found = _explicit
    return found if found is not None else Settings(enabled=not is_disabled_by_environment())


def follow(member: Follower) -> None:
    """Re-bind ``member`` whenever the switch changes."""
    with _lock:
        _followers.add(member)


def configure(**changes: Any) -> None:
    """Apply ``changes`` to the settings and re-bind every following cache."""
    global _explicit
    with _lock:
        _explicit = replace(current(), **changes)
        members = list(_followers)
    for member in members:
        member.rebind()


def explicit() -> Settings | None:
    """What instrument()/uninstrument() set last (None: nothing, the environment decides)."""
    return _explicit


def restore(settings: Settings | None) -> None:
    """Put back settings saved with :func:`explicit` (None: the environment's default)."""
    global _explicit
    with _lock:
        _explicit = settings
        members = list(_followers)
    for member in members:
        member.rebind()


def reset() -> None:
    """Back to the environment's default (tests)."""
    restore(None)

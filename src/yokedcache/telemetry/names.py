"""The name cap: which ``cache.name`` values report under their own name, and which as ``_other``.

A name built from data (a tenant id, say) must not grow the series without bound, so each meter
provider reports at most :data:`MAX_CACHE_NAMES` distinct names; later names report as
:data:`OTHER_NAME`. The decision is made here once, when a cache registers, and every output
reads it from :attr:`Instrumentation.label <yokedcache.telemetry.instrumentation.Instrumentation>`:
every metric family's attributes, span attributes, health output and the status page. So they all
agree on the same 64, and the choice is stable while caches come and go: a name keeps its slot for
the provider's lifetime (a closed cache's counts stay in its series), and a name that arrived
after the 64th stays ``_other`` even when earlier caches close.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from ..validation import OTHER_NAME

__all__ = ["MAX_CACHE_NAMES", "OTHER_NAME", "NameCap", "name_cap"]

#: Distinct cache names reported per meter provider; further names report as OTHER_NAME.
MAX_CACHE_NAMES = 64


class NameCap:
    """The first :data:`MAX_CACHE_NAMES` names registered, in registration order."""

    def __init__(self, limit: int = MAX_CACHE_NAMES) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._admitted: dict[str, None] = {}  # insertion-ordered: the registration order

    def label(self, name: str) -> str:
        """Register ``name`` (first come, first served) and return what it reports as."""
        admitted = self._admitted
        if name in admitted:
            return name
        with self._lock:
            if name in admitted:
                return name
            if len(admitted) >= self._limit:
                return OTHER_NAME
            admitted[name] = None
            return name

    def admitted(self) -> list[str]:
        """The names that report as themselves, in registration order."""
        with self._lock:
            return list(self._admitted)


_lock = threading.Lock()
_by_provider: weakref.WeakKeyDictionary[Any, NameCap] = weakref.WeakKeyDictionary()
_global = NameCap()


def name_cap(meter_provider: Any) -> NameCap:
    """The cap of ``meter_provider`` (``None`` = the global provider), created once."""
    if meter_provider is None:
        return _global
    with _lock:
        found = _by_provider.get(meter_provider)
        if found is None:
            found = _by_provider[meter_provider] = NameCap()
        return found

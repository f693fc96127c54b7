"""Plain in-process counters: what every operation costs besides one histogram record.

They are ints bumped on the event loop thread; observable instruments, ``get_stats()`` and
the health check read them, so exporters and the API can never disagree.
"""

from __future__ import annotations

import time
from typing import ClassVar

from .semconv import OPERATIONS

MAX_ERROR_TYPES = 64  # distinct (operation, error.type) pairs kept; the rest fold into "_OTHER"
OTHER_ERROR = "_OTHER"


class CacheCounters:
    """Counts of one cache. Key-level counts (gets/sets/deletes) count keys, not calls."""

    #: The monotonic counts, each read by an observable counter. ``telemetry/observers.py``
    #: keeps every one of them when a cache closes (so the series summed over a cache name
    #: never drops) by reading this tuple; ``__slots__`` is built from it, so a new count goes
    #: here or into the other slot names below, where ``tests/test_retired_counts.py`` fails.
    COUNTS: ClassVar[tuple[str, ...]] = ("hits", "misses", "sets", "deletes", "invalidations", "cancellations")

    __slots__ = (*COUNTS, "calls", "duration_sum", "errors", "started_monotonic")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.sets = 0
        self.deletes = 0
        self.invalidations = 0
        #: Operations the caller cancelled (its own timeout or shutdown): not backend errors.
        self.cancellations = 0
        # Every operation is present from the start, so the hot path does a plain ``+=``.
        self.calls: dict[str, int] = dict.fromkeys(OPERATIONS, 0)
        self.duration_sum: dict[str, float] = dict.fromkeys(OPERATIONS, 0.0)
        self.errors: dict[tuple[str, str], int] = {}
        self.started_monotonic = time.monotonic()

    def add_error(self, operation: str, error_type: str) -> None:
        key = (operation, error_type)
        errors = self.errors
        if key not in errors and len(errors) >= MAX_ERROR_TYPES:
            key = (operation, OTHER_ERROR)
        errors[key] = errors.get(key, 0) + 1

    @property
    def gets(self) -> int:
        return self.hits + self.misses

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def hit_rate(self) -> float | None:
        """Hits / gets since start; ``None`` before the first read (a 0 would fire hit-rate alerts)."""
        gets = self.hits + self.misses
        return self.hits / gets if gets else None

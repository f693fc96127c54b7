"""An in-process backend: a dict with TTLs, tags and LRU eviction by keys and by bytes.

It stores the same serialised bytes Redis would, so values are copies (a caller mutating a
returned value cannot change the cache). Sizes count what an entry really costs: the UTF-8 key
and the value plus the Python objects that hold them (see :func:`entry_size`), so
``max_memory_bytes`` bounds the process's memory, not only the payload -- like Redis's own
``MEMORY USAGE``, which includes its per-key overhead. All methods run on the event loop thread;
nothing here awaits, so no locking is needed.
"""

from __future__ import annotations

import heapq
import sys
import time
from collections import OrderedDict
from collections.abc import Sequence

from .. import validation
from .._glob import compile_glob
from .base import Backend, BackendInfo, Usage

__all__ = ["ENTRY_OVERHEAD", "EXPIRY_OVERHEAD", "TAG_MEMBERSHIP_OVERHEAD", "MemoryBackend", "entry_size"]

_NO_TAGS: frozenset[str] = frozenset()

# Per-entry overheads in bytes, measured with tracemalloc on CPython 3.11 (x86_64): N entries with
# small keys and values set into a fresh backend, (traced growth - key and value lengths) / N.
# Reproduce with ``python benchmarks/memory_entry_cost.py``.
#: The key's str object, the value's bytes object, the ``_Entry`` with its size (an int object
#: once above 256), and the OrderedDict slot and node. Measured 244-278 bytes for N from 1,000
#: to 300,000 (the dict's tables grow in steps, so the share per entry moves within a band).
ENTRY_OVERHEAD = 272
#: An entry with a TTL: its float deadline and its (deadline, key) tuple in the expiry heap.
EXPIRY_OVERHEAD = 88
#: Each tag: the entry's key in that tag's member set, measured 28-96 bytes as the set grows
#: (the entry's frozenset of tags is counted with ``sys.getsizeof``: 216 bytes for 1-4 tags).
TAG_MEMBERSHIP_OVERHEAD = 64


def entry_size(key: str, value: bytes, has_ttl: bool, tags: frozenset[str] = _NO_TAGS) -> int:
    """Bytes one entry costs: the UTF-8 key and the value plus the measured overheads."""
    size = len(key.encode("utf-8", "surrogatepass")) + len(value) + ENTRY_OVERHEAD
    if has_ttl:
        size += EXPIRY_OVERHEAD
    if tags:
        size += sys.getsizeof(tags) + TAG_MEMBERSHIP_OVERHEAD * len(tags)
    return size


class _Entry:
    __slots__ = ("expires_at", "size", "tags", "value")

    def __init__(self, value: bytes, expires_at: float | None, size: int, tags: frozenset[str]) -> None:
        self.value = value
        self.expires_at = expires_at
        self.size = size
        self.tags = tags


class MemoryBackend(Backend):
    """LRU dictionary bounded by ``max_keys`` and ``max_memory_bytes`` (``None`` = unbounded).

    Neither remote nor bound to an event loop; its figures are known at any moment
    (:meth:`current_usage`), so the facade runs no background refresh for it.
    """

    supports_nowait = True

    def __init__(self, max_keys: int | None = None, max_memory_bytes: int | None = None) -> None:
        for name, value in (("max_keys", max_keys), ("max_memory_bytes", max_memory_bytes)):
            validation.number(name, value, rule="must be positive", kind="an int or None", integer=True, minimum=0,
                              allow_zero=False, allow_none=True)  # fmt: skip
        self.max_keys = max_keys
        self.max_memory_bytes = max_memory_bytes
        self.info = BackendInfo(kind="memory")
        self._data: OrderedDict[str, _Entry] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self._expiry_heap: list[tuple[float, str]] = []
        self._bytes = 0
        self.evictions: int = 0
        self.expirations = 0
        self._clock = time.monotonic

    # -- internal bookkeeping -------------------------------------------------------------
    def _remove(self, key: str, entry: _Entry) -> None:
        del self._data[key]
        self._bytes -= entry.size
        for tag in entry.tags:
            members = self._tags.get(tag)
            if members is not None:
                members.discard(key)
                if not members:
                    del self._tags[tag]

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.expires_at is not None and entry.expires_at <= now:
            self._remove(key, entry)
            self.expirations += 1
            return None
        return entry

    def _purge_expired(self, now: float) -> None:
        heap = self._expiry_heap
        while heap and heap[0][0] <= now:
            expires_at, key = heapq.heappop(heap)
            entry = self._data.get(key)
            if entry is not None and entry.expires_at == expires_at:
                self._remove(key, entry)
                self.expirations += 1
        # Overwritten keys leave stale heap items behind; rebuild before they dominate.
        if len(heap) > 2 * len(self._data) + 1024:
            self._expiry_heap = [(e.expires_at, k) for k, e in self._data.items() if e.expires_at is not None]
            heapq.heapify(self._expiry_heap)

    def _store(self, key: str, value: bytes, ttl: float | None, tags: frozenset[str], now: float) -> None:
        old = self._data.get(key)
        if old is not None and old.tags:  # as on Redis: a key stays in its tag sets until they are invalidated
            tags = old.tags | tags
        size = entry_size(key, value, ttl is not None, tags)
        if self.max_memory_bytes is not None and size > self.max_memory_bytes:
            raise ValueError(
                f"value for one key needs {size} bytes, more than max_memory_bytes={self.max_memory_bytes}"
            )
        if old is not None:
            self._remove(key, old)
        expires_at = None if ttl is None else now + ttl
        self._data[key] = _Entry(value, expires_at, size, tags)
        self._bytes += size
        for tag in tags:
            self._tags.setdefault(tag, set()).add(key)
        if expires_at is not None:
            heapq.heappush(self._expiry_heap, (expires_at, key))

    def _evict(self) -> None:
        max_keys, max_bytes = self.max_keys, self.max_memory_bytes
        while self._data and (
            (max_keys is not None and len(self._data) > max_keys) or (max_bytes is not None and self._bytes > max_bytes)
        ):
            key, entry = next(iter(self._data.items()))
            self._remove(key, entry)
            self.evictions += 1

    # -- synchronous fast path (the facade calls these directly: no coroutine per operation) --
    def get_nowait(self, key: str) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        expires_at = entry.expires_at
        if expires_at is not None and expires_at <= self._clock():
            self._remove(key, entry)
            self.expirations += 1
            return None
        self._data.move_to_end(key)
        return entry.value

    def set_nowait(self, key: str, value: bytes, ttl: float | None, tags: Sequence[str] = ()) -> None:
        now = self._clock()
        heap = self._expiry_heap
        if heap and (heap[0][0] <= now or len(heap) > 2 * len(self._data) + 1024):
            self._purge_expired(now)
        self._store(key, value, ttl, frozenset(tags) if tags else _NO_TAGS, now)
        self._evict()

    # -- the Backend contract -------------------------------------------------------------
    async def get(self, key: str) -> bytes | None:
        return self.get_nowait(key)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        get = self.get_nowait
        return [get(k) for k in keys]

    async def set(self, key: str, value: bytes, ttl: float | None, tags: Sequence[str] = ()) -> None:
        self.set_nowait(key, value, ttl, tags)

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float | None, tags: Sequence[str] = ()) -> None:
        now = self._clock()
        self._purge_expired(now)
        frozen = frozenset(tags)
        for key, value in items:
            self._store(key, value, ttl, frozen, now)
        self._evict()

    async def delete(self, keys: Sequence[str]) -> int:
        now = self._clock()
        removed = 0
        for key in keys:
            entry = self._live(key, now)
            if entry is not None:
                self._remove(key, entry)
                removed += 1
        return removed

    async def exists(self, key: str) -> bool:
        return self._live(key, self._clock()) is not None

    async def invalidate_pattern(self, pattern: str) -> int:
        match = compile_glob(pattern).match
        victims = [k for k in self._data if match(k)]
        return await self.delete(victims)

    async def invalidate_tags(self, tag_keys: Sequence[str]) -> int:
        victims: set[str] = set()
        for tag in tag_keys:
            victims |= self._tags.get(tag, set())
        return await self.delete(list(victims))

    async def usage(self, pattern: str) -> Usage:
        if pattern == "*":
            return Usage(len(self._data), self._bytes)
        match = compile_glob(pattern).match
        keys = size = 0
        for key, entry in self._data.items():
            if match(key):
                keys += 1
                size += entry.size
        return Usage(keys, size)

    def snapshot(self) -> Usage:
        """Current totals without awaiting: safe to call from a metrics callback thread."""
        return Usage(len(self._data), self._bytes)

    def current_usage(self) -> Usage:
        return self.snapshot()

    async def close(self) -> None:
        self._data.clear()
        self._tags.clear()
        self._expiry_heap.clear()
        self._bytes = 0

    def __repr__(self) -> str:
        return f"MemoryBackend(max_keys={self.max_keys}, max_memory_bytes={self.max_memory_bytes})"

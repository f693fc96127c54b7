"""The contract between the cache facade and a storage backend.

Backends store opaque bytes under fully-qualified keys; naming, serialisation, telemetry and
resilience all live above them, so a backend is small enough to reason about (and to write).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "MISCONFIGURED",
    "REJECTED",
    "RESERVED_CONNECTIONS",
    "TRANSIENT",
    "UNAVAILABLE",
    "Backend",
    "BackendInfo",
    "DatabaseUsage",
    "Failure",
    "Usage",
]

#: Connections a pooled backend keeps beyond ``max_connections`` for side work (health pings,
#: statistics). The facade admits at most ``max_connections`` operations and at most this many
#: side calls at once, so the pool can never be asked for more than it has.
RESERVED_CONNECTIONS = 2

#: The server could not be reached or did not answer in time: retried, counted by the breaker.
TRANSIENT = "transient"
#: The server answered but cannot serve (read-only replica, loading, wrong password): counted by
#: the breaker, not retried (the same server will say the same thing a few ms later).
UNAVAILABLE = "unavailable"
#: The server refused this one command (out of memory, wrong type): it is up, so the breaker
#: stays out of it; the operation fails and is counted.
REJECTED = "rejected"
#: The server can never serve what the configuration asks of it (a cluster URL at a node without
#: cluster mode): not an outage, so no retry and no breaker; raised whatever ``fail_open`` says.
MISCONFIGURED = "misconfigured"


@dataclass(frozen=True)
class Failure:
    """What a backend exception means for the cache: how to treat it and why, in words."""

    kind: str  # TRANSIENT, UNAVAILABLE, REJECTED or MISCONFIGURED
    reason: str  # "connection refused", "read-only replica", ... (never a key, value or secret)
    code: str | None = None  # the server's error prefix, e.g. "READONLY", "OOM", "WRONGTYPE"


@dataclass(frozen=True)
class DatabaseUsage:
    """Whole-database figures from Redis (not this cache's share of them).

    ``keys`` and ``keys_with_ttl`` are the selected database's (``DBSIZE``, ``INFO keyspace``);
    ``used_memory_bytes`` is the whole server's (``INFO memory``: every database, plus overhead).
    """

    keys: int
    keys_with_ttl: int | None = None
    used_memory_bytes: int | None = None


@dataclass(frozen=True)
class Usage:
    """How much this cache holds: keys and bytes (keys plus serialised values).

    ``method`` says how the figures were obtained, so nobody mistakes an estimate for a count:
    ``"exact"`` (every key counted), ``"sampled"`` (estimated from random keys; ``keys_error``
    and ``bytes_error`` are the 95 % half-widths) or ``"exact_keys"`` (keys counted by a paced
    full SCAN, bytes estimated from the sample).
    """

    keys: int
    bytes: int
    method: str = "exact"
    keys_error: int = 0
    bytes_error: int = 0
    #: Random keys drawn for a sampled estimate (0 when counted).
    samples: int = 0
    database: DatabaseUsage | None = None
    #: Wall-clock time (``time.time()``) the figures describe.
    measured_at: float | None = None

    @property
    def estimated(self) -> bool:
        return self.method != "exact"


@dataclass(frozen=True)
class BackendInfo:
    """Static facts about where a backend stores data (for spans, health and logs; no secrets)."""

    kind: str  # "memory" or "redis"
    system: str | None = None  # the database system, e.g. "redis"
    host: str | None = None
    port: int | None = None
    db: str | None = None  # database index / namespace as a string
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """Async storage of bytes. ``ttl`` is in seconds (``None`` = no expiry).

    ``tags`` and ``tag_keys`` are fully-qualified tag-set names chosen by the facade.
    """

    info: BackendInfo

    async def get(self, key: str) -> bytes | None: ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def set(self, key: str, value: bytes, ttl: float | None, tags: Sequence[str] = ()) -> None: ...

    async def set_many(
        self, items: Sequence[tuple[str, bytes]], ttl: float | None, tags: Sequence[str] = ()
    ) -> None: ...

    async def delete(self, keys: Sequence[str]) -> int: ...

    async def exists(self, key: str) -> bool: ...

    async def invalidate_pattern(self, pattern: str) -> int:
        """Delete every key matching a Redis glob ``pattern``; return how many were deleted."""
        ...

    async def invalidate_tags(self, tag_keys: Sequence[str]) -> int:
        """Delete every key recorded under these tag sets, and the sets; return keys deleted."""
        ...

    async def ping(self) -> None:
        """Round-trip to the store; raise if it cannot be reached."""
        ...

    async def usage(self, pattern: str) -> Usage:
        """Count keys/bytes matching ``pattern``. May be expensive: callers cache the answer."""
        ...

    def pool_stats(self) -> dict[str, Any] | None:
        """Connection-pool figures (max, in_use, idle, created) or ``None`` where there is no pool."""
        ...

    async def drop_idle_connections(self) -> None:
        """Close pooled connections nobody is using (they are suspect once the server went away)."""
        ...

    async def close(self) -> None: ...

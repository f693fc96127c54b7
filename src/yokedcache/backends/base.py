"""The contract between the cache facade and a storage backend.

Backends store opaque bytes under fully-qualified keys; naming, serialisation, telemetry and
resilience all live above them, so a backend is small enough to reason about (and to write).

Everything the facade, the health checks and the alert evaluator ask of a backend is declared on
:class:`Backend`: the storage operations only the store can implement are abstract; every other
member has a default that means "this backend does not have that" (no fast path, no pool, no
evictions counted, no outage to survive). A new backend overrides what it has and nothing else;
``tests/test_backend_contract.py`` runs the cache's behaviour suite on one that implements only
the abstract members.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import validation
from .._glob import escape_glob

__all__ = [
    "MISCONFIGURED",
    "REJECTED",
    "RESERVED_CONNECTIONS",
    "TRANSIENT",
    "UNAVAILABLE",
    "Backend",
    "BackendInfo",
    "BatchObserver",
    "DatabaseUsage",
    "DriverTelemetry",
    "Failure",
    "Pipeliner",
    "ProcessLocks",
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
    """Static facts about where a backend stores data, for spans, health output and logs (no
    secrets). They are data to report: what the facade does follows :class:`Backend`'s declared
    capabilities, never these strings."""

    kind: str  # "memory" or "redis"
    system: str | None = None  # the database system, e.g. "redis"
    host: str | None = None
    port: int | None = None
    db: str | None = None  # database index / namespace as a string
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # ``kind`` becomes a label (``cache.backend``, and ``cache.name`` when the cache has no
        # name): checked here, where it enters, by the rule a cache name follows.
        validation.cache_name("kind", self.kind)


@dataclass(frozen=True)
class DriverTelemetry:
    """What the client library's own OpenTelemetry records for a backend's calls (redis-py's,
    ``redis[otel]``, once the application initialised it), so the facade records nothing twice."""

    #: Operations (backend method names) whose commands the driver times itself.
    timed: frozenset[str] = frozenset()
    #: Operations the driver would time but never sees: their commands leave on connections of
    #: this backend's own (the auto-pipeliner), outside the driver's command path.
    unseen: frozenset[str] = frozenset()
    #: The driver reports connection counts (``db.client.connection.count``) for this backend's pool.
    counts_connections: bool = False


class BatchObserver(Protocol):
    """Told about every auto-pipelined batch; implemented by the cache's instrumentation
    (``telemetry/instrumentation.py``), so the backend needs to know nothing of telemetry."""

    def pipeline_context(self) -> Any:
        """Called when an operation is queued (in the caller's context): e.g. its current span."""
        ...

    def pipeline_started(self, operations: int, commands: int, spans: list[Any]) -> Any:
        """A batch leaves; ``spans`` holds what :meth:`pipeline_context` returned for each of its
        operations. Returns a token handed back to :meth:`pipeline_finished`."""
        ...

    def pipeline_finished(self, token: Any, error: BaseException | None) -> None: ...


class Pipeliner(Protocol):
    """What the facade sets on a backend's auto-pipeliner (``backends/autopipeline.py``)."""

    #: One deadline per round trip, in seconds: the facade sets its ``operation_timeout`` here,
    #: because the guard does not time pipelined calls one by one.
    timeout: float | None


class Backend(ABC):
    """Async storage of bytes. ``ttl`` is in seconds (``None`` = no expiry).

    ``tags`` and ``tag_keys`` are fully-qualified tag-set names chosen by the facade. A subclass
    sets :attr:`info` in ``__init__`` and implements the abstract methods; the class attributes
    and the other methods are capabilities, declared here with the defaults of a store that lacks
    them. ``get``, ``set``, ``get_many``, ``set_many``, ``delete`` and ``exists`` may return any
    awaitable rather than be coroutine functions: redis-py's own command, or a pipeliner's future,
    saves a coroutine frame on the hot path (``benchmarks/overhead.py`` target 1).
    """

    #: Where the data lives. Every subclass sets it in ``__init__``.
    info: BackendInfo

    #: Calls cross a network to a server. They can fail the way an outage does, so the facade
    #: puts each through its guard (admission, deadline, retries, circuit breaker) and asks
    #: :meth:`classify_error` what each exception means; and a span costs little beside a round
    #: trip, so tracing is on by default. False: an in-process store, whose exceptions pass
    #: straight through and whose spans are opt-in (one would cost more than the lookup).
    remote: bool = False
    #: Its connections (sockets, futures) belong to the event loop that opened them. The facade
    #: then checks each operation's loop, rebuilds a backend it built itself for a new loop,
    #: refuses to move one it was handed, and closes it on its own loop. False: any loop will do,
    #: and the facade skips the per-operation check (``benchmarks/overhead.py`` target 3b).
    loop_bound: bool = False
    #: :meth:`get_nowait` and :meth:`set_nowait` answer without awaiting: the facade's get and
    #: set call them instead of :meth:`get` and :meth:`set`, with no coroutine per operation.
    supports_nowait: bool = False
    #: :meth:`count_keys` counts exactly at a paced CPU budget: with ``stats_exact_keys`` the
    #: facade runs it in the background. False: exact counts are not offered (an unpaced full
    #: scan every interval would cost more than the sampled figures save).
    counts_keys: bool = False
    #: The facade admits at most this many operations at once (the pool has
    #: :data:`RESERVED_CONNECTIONS` more for side work); ``None``: no admission limit.
    max_connections: int | None = None
    #: Entries evicted to stay within bounds since start (the evictions counter and the eviction
    #: rate alert read it); ``None``: this backend does not evict, or cannot tell.
    evictions: int | None = None
    #: Bumped by every invalidation, so usage measured before one is known to be stale and is
    #: measured again; ``None``: not counted (measured usage then goes stale only with age).
    invalidations: int | None = None
    #: An auto-pipeliner whose ``get``, ``set``, ``get_many``, ``set_many``, ``delete`` and
    #: ``exists`` this backend installed on itself in place of its own methods (same signatures).
    #: The guard neither admits nor times their calls: the pipeliner bounds its connections and
    #: puts a deadline on each round trip. ``None``: no pipelining.
    pipeliner: Pipeliner | None = None

    # -- storage: what only the store can do --------------------------------------------------
    @abstractmethod
    def get(self, key: str) -> Awaitable[bytes | None]: ...

    @abstractmethod
    def set(self, key: str, value: bytes, ttl: float | None, tags: Sequence[str] = ()) -> Awaitable[None]: ...

    @abstractmethod
    def delete(self, keys: Sequence[str]) -> Awaitable[int]:
        """Delete ``keys``; return how many existed."""

    @abstractmethod
    async def invalidate_pattern(self, pattern: str) -> int:
        """Delete every key matching a Redis glob ``pattern`` (``yokedcache._glob`` matches one
        exactly as Redis does); return how many were deleted."""

    @abstractmethod
    async def invalidate_tags(self, tag_keys: Sequence[str]) -> int:
        """Delete every key recorded under these tag sets, and the sets; return keys deleted."""

    @abstractmethod
    async def usage(self, pattern: str) -> Usage:
        """Count keys/bytes matching ``pattern``. May be expensive: callers cache the answer."""

    # -- storage with defaults: one call per key, for stores without a batch command ---------
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [await self.get(key) for key in keys]

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float | None, tags: Sequence[str] = ()) -> None:
        """Store every item. Atomic where the store can make it so (Redis: one MULTI); this
        default writes them one after another."""
        for key, value in items:
            await self.set(key, value, ttl, tags)

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    # -- the synchronous fast path (``supports_nowait``) ------------------------------------
    def get_nowait(self, key: str) -> bytes | None:
        """:meth:`get`, answered without awaiting; only called when ``supports_nowait``."""
        raise NotImplementedError(f"{type(self).__name__} has no synchronous get")

    def set_nowait(self, key: str, value: bytes, ttl: float | None, tags: Sequence[str] = ()) -> None:
        """:meth:`set`, done without awaiting; only called when ``supports_nowait``."""
        raise NotImplementedError(f"{type(self).__name__} has no synchronous set")

    # -- failures ---------------------------------------------------------------------------
    def classify_error(self, exc: BaseException) -> Failure | None:
        """What an exception raised by this backend means for the cache (retry it, open the
        breaker, or just fail the one operation); ``None``: not a backend failure, so it passes
        through untouched. Only asked when ``remote``."""
        return None

    # -- statistics -------------------------------------------------------------------------
    def current_usage(self) -> Usage | None:
        """Figures known without I/O (metric callbacks ask from the reader's thread). ``None``:
        measuring takes I/O, so the facade measures in the background with
        :meth:`estimate_usage` and serves the last answer."""
        return None

    async def estimate_usage(self, prefix: str, *, max_age: float = 0.0) -> Usage:
        """Keys and bytes under the literal ``prefix``, as cheaply as the store allows.

        ``max_age`` > 0 lets a backend reuse a measurement shared within that many seconds. This
        default counts with :meth:`usage`, which a store that can sample overrides."""
        return await self.usage(escape_glob(prefix) + "*")

    async def count_keys(self, pattern: str, *, cpu_budget: float = 1.0) -> int:
        """Keys matching ``pattern``, counted exactly (``stats_exact_keys``) at most at
        ``cpu_budget`` of a core; only called when ``counts_keys``."""
        raise NotImplementedError(f"{type(self).__name__} does not count keys (counts_keys is False)")

    # -- locks (cache-aside's ``lock=True``) ---------------------------------------------------
    #: Locks are seen by every process sharing the store (Redis). False: the default below, a
    #: lock in this process only, shared by every cache on this backend instance (all the memory
    #: backend's callers live in one process anyway).
    shared_locks: bool = False

    async def acquire_lock(self, name: str, token: str, ttl: float) -> bool:
        """Take ``name`` for at most ``ttl`` seconds unless someone holds it; True if taken."""
        return _process_locks(self).acquire(name, token, ttl)

    async def release_lock(self, name: str, token: str) -> bool:
        """Release ``name`` if ``token`` still holds it (it may have expired and been retaken)."""
        return _process_locks(self).release(name, token)

    async def lock_held(self, name: str) -> bool:
        """True while anyone holds ``name``."""
        return _process_locks(self).held(name)

    # -- connections --------------------------------------------------------------------------
    def tracking_connection(self) -> Any:
        """A new, unconnected RESP2 connection for a near cache's invalidation link
        (``CLIENT TRACKING``, see :mod:`.near_cache`). Raises ``ValueError`` saying why where
        this backend cannot keep a near cache coherent (the default: no server to track)."""
        raise ValueError(f"near_cache: the {self.info.kind} backend has no server that sends invalidations "
                         "(a near cache sits in front of Redis; the memory backend is in-process already)")  # fmt: skip

    async def get_with_ttl(self, key: str) -> tuple[bytes | None, int]:
        """``key``'s value and its remaining time to live in ms (Redis ``PTTL``: -1 none, -2 gone),
        in one round trip: how a near cache fills (only called where :meth:`tracking_connection` works)."""
        raise NotImplementedError

    async def ping(self) -> None:
        """Round-trip to the store; raise if it cannot be reached (nothing to reach: return)."""
        return None

    def pool_stats(self) -> dict[str, Any] | None:
        """Connection-pool figures (max_connections, in_use, idle, created, utilization) or
        ``None`` where there is no pool."""
        return None

    async def drop_idle_connections(self) -> None:
        """Close pooled connections nobody is using (they are suspect once the server went away)."""
        return None

    def abandon_connections(self) -> None:
        """Hang up every connection without the event loop that owns them (it is closed)."""
        return None

    def driver_telemetry(self) -> DriverTelemetry:
        """What the driver's own telemetry already records (read when the cache is made)."""
        return DriverTelemetry()

    def observe_batches(self, observer: BatchObserver) -> None:
        """Tell ``observer`` about every auto-pipelined batch (a backend that pipelines)."""
        return None

    async def close(self) -> None:
        """Release everything this backend holds; the facade calls nothing on it afterwards."""
        return None


class ProcessLocks:
    """Expiring locks in this process: :class:`Backend`'s default lock capability."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}

    def acquire(self, name: str, token: str, ttl: float) -> bool:
        now = time.monotonic()
        current = self._held.get(name)
        if current is not None and current[1] > now:
            return False
        self._held[name] = (token, now + ttl)
        return True

    def release(self, name: str, token: str) -> bool:
        current = self._held.get(name)
        if current is None or current[0] != token:
            return False
        del self._held[name]
        return current[1] > time.monotonic()

    def held(self, name: str) -> bool:
        current = self._held.get(name)
        return current is not None and current[1] > time.monotonic()


def _process_locks(backend: Backend) -> ProcessLocks:
    """The backend's own :class:`ProcessLocks`, made at its first lock."""
    locks: ProcessLocks | None = backend.__dict__.get("_process_locks")
    if locks is None:
        locks = backend.__dict__["_process_locks"] = ProcessLocks()
    return locks

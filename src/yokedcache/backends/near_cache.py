"""A near cache: hot values in process memory, kept coherent by Redis's own invalidations.

Redis 6+ offers server-assisted client-side caching (``CLIENT TRACKING``). This module holds the
local store and the one *invalidation link* that keeps it honest:

- **BCAST with the cache's key prefix, over one RESP2 connection that redirects to itself.** The
  link runs ``CLIENT ID``, ``CLIENT TRACKING ON REDIRECT <its id> BCAST PREFIX <key prefix>`` and
  ``SUBSCRIBE __redis__:invalidate``. Redis then sends the name of every key under the prefix
  that changes -- written by anyone, expired, evicted, deleted -- and a nil for ``FLUSHDB``/
  ``FLUSHALL``. Default (non-BCAST) mode would track only the keys a connection *read*, which
  means every data connection (the pool's, the auto-pipeliner's, after each reconnect) must turn
  tracking on before its first read and re-point it whenever the link reconnects; BCAST needs
  nothing of the data path, costs Redis no per-key table, and its price -- one message per write
  under the prefix, including keys this process never read -- is paid by a connection that does
  nothing else.
- **The in-flight race** (Redis's client-side-caching page): a read's reply and an invalidation
  of the same key travel on different connections, so the invalidation may arrive first and the
  (older) reply would then be cached forever. Each fill registers its key before it sends; an
  invalidation arriving meanwhile bumps that key's generation, and the reply is only stored if
  the generation, and the link's epoch, are unchanged.
- **A bound on staleness.** The link sends ``PING`` every ``max_staleness / 4``; Redis answers in
  order on the same connection, so a ``pong`` proves every invalidation queued before that PING
  was processed has been applied here. A local copy is served only while the newest ``pong``
  answers a PING sent less than ``max_staleness`` ago. Hence the promise (docs/near-cache.md):
  *a GET that starts more than ``max_staleness`` after a write's reply was received by any
  client sees that write or a newer one*; in this process a write's own reply is enough.
- **Dropped link**: the local store is flushed at once, and nothing is served or stored until
  the link is subscribed again (it reconnects with back-off).

The backend knows nothing of telemetry: plain counts live in :class:`NearStats`, owned by the
cache so they survive a backend rebuilt for another event loop, and an optional ``on_lag``
callback receives invalidation-lag samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import validation
from ._connections import hang_up

if TYPE_CHECKING:
    from .base import Backend

__all__ = ["NearCache", "NearCacheConfig", "NearStats"]

log = logging.getLogger("yokedcache.near_cache")

CHANNEL = b"__redis__:invalidate"
#: Estimated bytes of bookkeeping per entry (dict slot, tuple, bytes and str headers), added to
#: the key's and value's lengths when counting ``max_bytes``.
ENTRY_OVERHEAD = 160
#: Unanswered PINGs after which the link is taken for hung and reconnected.
MAX_UNANSWERED = 32
_monotonic = time.monotonic


@dataclass(frozen=True)
class NearCacheConfig:
    """Settings of a near cache (``CacheConfig(near_cache=NearCacheConfig(...))``; ``True``: defaults).

    ``max_entries`` and ``max_bytes`` bound the local store (least recently used out first; bytes
    count keys, values and ``ENTRY_OVERHEAD`` per entry). ``max_staleness`` is the coherence
    bound in seconds (see the module docstring). ``max_ttl`` caps how long a copy is kept locally
    (``None``: as long as Redis keeps the key, invalidations permitting).
    """

    max_entries: int = 10_000
    max_bytes: int = 16 * 1024 * 1024
    max_staleness: float = 0.2
    max_ttl: float | None = None
    #: Seconds between two invalidation-lag samples (one of this process's own SETs each).
    lag_sample_interval: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_entries", "max_bytes"):
            validation.number(f"near_cache.{name}", getattr(self, name), rule="must be a positive int",
                              kind="an int", integer=True, minimum=1)  # fmt: skip
        validation.number("near_cache.max_staleness", self.max_staleness, rule="must be between 0.01 and 60 seconds",
                          kind="a number", minimum=0.01, maximum=60)  # fmt: skip
        validation.number("near_cache.max_ttl", self.max_ttl, rule="must be a positive finite number of seconds",
                          kind="a number or None", minimum=0, allow_zero=False, finite=True,
                          allow_none=True)  # fmt: skip
        validation.number("near_cache.lag_sample_interval", self.lag_sample_interval,
                          rule="must be a positive finite number of seconds", kind="a number", minimum=0,
                          allow_zero=False, finite=True)  # fmt: skip


class NearStats:
    """Counts of one cache's near cache, kept across backend rebuilds (read by telemetry)."""

    __slots__ = ("flushes", "hits", "invalidations", "link_error", "link_up", "misses", "store")

    def __init__(self) -> None:
        #: GETs answered from process memory, and GETs that went on to Redis.
        self.hits = 0
        self.misses = 0
        #: Keys named by Redis's invalidation messages (a nil, FLUSHDB, counts one).
        self.invalidations = 0
        #: Whole-store flushes because the link dropped, could not be proven fresh, or FLUSHDB.
        self.flushes = 0
        #: The invalidation link is subscribed: local copies may be served (health reads it).
        self.link_up = False
        #: Why the link last failed (an exception's type name), until it is up again.
        self.link_error: str | None = None
        self.store: LocalStore | None = None

    @property
    def entries(self) -> int:
        return len(self.store.entries) if self.store is not None else 0

    @property
    def bytes(self) -> int:
        return self.store.bytes if self.store is not None else 0

    @property
    def hit_rate(self) -> float | None:
        """Share of GETs served from process memory; ``None`` before the first."""
        total = self.hits + self.misses
        return self.hits / total if total else None


class LocalStore:
    """Bytes by full key, least recently used first, within ``max_entries`` and ``max_bytes``."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        #: key -> (value, monotonic deadline, counted size)
        self.entries: OrderedDict[str, tuple[bytes, float, int]] = OrderedDict()
        self.bytes = 0

    def put(self, key: str, value: bytes, deadline: float) -> None:
        self.pop(key)  # first: a value too big to keep must not leave an older one behind
        size = len(key) + len(value) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        self.entries[key] = (value, deadline, size)
        self.bytes += size
        while len(self.entries) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, _, dropped) = self.entries.popitem(last=False)
            self.bytes -= dropped

    def pop(self, key: str) -> None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry[2]

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0


class NearCache:
    """The local store and its invalidation link, installed on one Redis backend instance.

    :meth:`install` replaces the backend's ``get`` (a fill that may store the reply), its writes
    (which drop the local copy before and after) and ``close``/``abandon_connections`` (which end
    the link), as the auto-pipeliner replaces its methods: the facade's calls are unchanged.
    """

    def __init__(self, backend: Backend, config: NearCacheConfig, prefix: str, stats: NearStats) -> None:
        self.config = config
        self.prefix = prefix
        self.stats = stats
        self.store = stats.store = LocalStore(config.max_entries, config.max_bytes)
        self._connect: Callable[[], Any] = backend.tracking_connection
        self._get_with_ttl = backend.get_with_ttl
        #: The backend's own methods, called by the wrappers.
        self._plain_get = backend.get
        self._set, self._set_many, self._delete = backend.set, backend.set_many, backend.delete
        self._get_many, self._exists = backend.get_many, backend.exists
        self._invalidate_pattern, self._invalidate_tags = backend.invalidate_pattern, backend.invalidate_tags
        self._close, self._abandon = backend.close, backend.abandon_connections
        #: Called with each invalidation-lag sample, in seconds.
        self.on_lag: Callable[[float], None] | None = None
        #: Bumped whenever the store is flushed: a fill begun before it stores nothing.
        self.epoch = 0
        self.live = False
        #: Local copies are served only before this monotonic time (see the module docstring).
        self.fresh_until = 0.0
        #: key -> [fills in flight, generation]
        self._inflight: dict[str, list[int]] = {}
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None
        #: Set while the link is subscribed (made with the link task, on its loop).
        self._up: asyncio.Event | None = None
        self._pings: dict[int, tuple[float, asyncio.Future[None] | None]] = {}
        self._seq = 0
        self._closed = False
        #: The sampled own write: [key, reply time or None, invalidation seen before the reply]
        self._probe: list[Any] | None = None
        self._next_probe = 0.0

    @classmethod
    def install(cls, backend: Backend, config: NearCacheConfig, prefix: str, stats: NearStats) -> NearCache:
        backend.tracking_connection()  # built, not connected: refuses here, at start-up, saying why
        near = cls(backend, config, prefix, stats)
        backend.get = near.fill  # type: ignore[method-assign]
        backend.set = near.set  # type: ignore[method-assign]
        backend.set_many = near.set_many  # type: ignore[method-assign]
        backend.delete = near.delete  # type: ignore[method-assign]
        backend.get_many, backend.exists = near.get_many, near.exists  # type: ignore[method-assign]
        # Plain functions, not methods of ``near``: when the facade lets the near cache's pipelined
        # calls skip its admission and deadline (``Guard.self_admitting``), these keep both.
        backend.invalidate_pattern = lambda pattern: near.invalidate_pattern(pattern)  # type: ignore[method-assign]
        backend.invalidate_tags = lambda tag_keys: near.invalidate_tags(tag_keys)  # type: ignore[method-assign]
        backend.close = near.close  # type: ignore[method-assign]
        backend.abandon_connections = near.abandon_connections  # type: ignore[method-assign]
        return near

    # -- reads ----------------------------------------------------------------------------------
    def lookup(self, key: str) -> bytes | None:
        """The local copy of ``key`` if it may be served now, else ``None`` (counted either way)."""
        entry = self.store.entries.get(key)
        if entry is not None:
            now = _monotonic()
            if now < self.fresh_until and now < entry[1]:
                self.store.entries.move_to_end(key)
                self.stats.hits += 1
                return entry[0]
            if now >= entry[1]:
                self.store.pop(key)
        self.stats.misses += 1
        return None

    async def fill(self, key: str) -> bytes | None:
        """GET ``key`` from Redis and keep the reply locally unless it may be stale."""
        if not self.live:
            return await self._plain_get(key)
        epoch = self.epoch
        record = self._inflight.get(key)
        if record is None:
            record = self._inflight[key] = [0, 0]
        record[0] += 1
        generation = record[1]
        started = _monotonic()
        try:
            value, pttl = await self._get_with_ttl(key)
        finally:
            record[0] -= 1
            if not record[0]:
                self._inflight.pop(key, None)
        if value is not None and pttl != -2 and record[1] == generation and epoch == self.epoch:
            limit = self.config.max_ttl
            deadline = started + pttl / 1000 if pttl >= 0 else started + (limit if limit is not None else 1e12)
            if limit is not None:
                deadline = min(deadline, started + limit)
            self.store.put(key, value, deadline)
        return value

    # Unchanged reads, as methods of this object like every call the facade makes through it
    # (see install): the guard then treats them alike.
    def get_many(self, keys: Sequence[str]) -> Awaitable[list[bytes | None]]:
        return self._get_many(keys)

    def exists(self, key: str) -> Awaitable[bool]:
        return self._exists(key)

    # -- writes by this process -----------------------------------------------------------------
    def discard(self, key: str) -> None:
        """Drop the local copy of ``key`` and spoil every fill of it in flight."""
        self.store.pop(key)
        record = self._inflight.get(key)
        if record is not None:
            record[1] += 1

    def _discard_all(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.discard(key)

    async def set(self, key: str, value: bytes, ttl: float | None, tags: Sequence[str] = ()) -> Any:
        # Before: no reader here sees the old copy once the write is sent. After: a fill that
        # Redis served before the write but whose reply came back after it stores nothing.
        self.discard(key)
        probe = self._start_probe(key)
        try:
            return await self._set(key, value, ttl, tags)
        finally:
            self.discard(key)
            if probe is not None:
                self._probe_replied(probe)

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float | None, tags: Sequence[str] = ()) -> Any:
        keys = [k for k, _ in items]
        self._discard_all(keys)
        try:
            return await self._set_many(items, ttl, tags)
        finally:
            self._discard_all(keys)

    async def delete(self, keys: Sequence[str]) -> int:
        self._discard_all(keys)
        try:
            return await self._delete(keys)
        finally:
            self._discard_all(keys)

    async def invalidate_pattern(self, pattern: str) -> int:
        # The keys are known only to Redis: wait until its invalidations of them have arrived.
        try:
            return await self._invalidate_pattern(pattern)
        finally:
            await self.sync()

    async def invalidate_tags(self, tag_keys: Sequence[str]) -> int:
        try:
            return await self._invalidate_tags(tag_keys)
        finally:
            await self.sync()

    async def sync(self, timeout: float = 1.0) -> None:
        """Return once every invalidation Redis queued before now has been applied here.

        A PING on the link: its pong comes after them. If the link cannot prove it in
        ``timeout``, the store is flushed instead (the same outcome, at a higher price).
        """
        if not self.live or self._conn is None:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            await self._ping(future)
            await asyncio.wait_for(future, timeout)
        except Exception:
            self.flush()

    # -- invalidation lag sampling --------------------------------------------------------------
    def _start_probe(self, key: str) -> list[Any] | None:
        if self.on_lag is None or not self.live or self._probe is not None:
            return None
        now = _monotonic()
        if now < self._next_probe:
            return None
        self._next_probe = now + self.config.lag_sample_interval
        self._probe = [key, None, False]
        return self._probe

    def _probe_replied(self, probe: list[Any]) -> None:
        if probe is not self._probe:
            return
        if probe[2]:  # the invalidation beat the reply: no lag at all
            self._probe = None
            self._lag(0.0)
        else:
            probe[1] = time.perf_counter()

    def _probe_invalidated(self) -> None:
        probe = self._probe
        if probe is None:
            return
        if probe[1] is None:
            probe[2] = True
        else:
            self._probe = None
            self._lag(time.perf_counter() - probe[1])

    def _lag(self, seconds: float) -> None:
        if self.on_lag is not None:
            self.on_lag(seconds)

    # -- the invalidation link ------------------------------------------------------------------
    def start(self) -> None:
        """Start the link on the running loop (idempotent); the store serves once it is up."""
        if self._task is None and not self._closed:
            self._up = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._link_forever(), name="yokedcache-near-cache")

    async def wait_live(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the link; whether it is up (reads work either way)."""
        self.start()
        if self._up is not None and not self.live:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._up.wait(), timeout)
        return self.live

    def flush(self, *, counted: bool = True) -> None:
        """Forget every local copy and spoil every fill in flight (``counted``: a flush the
        metrics report -- a lost link, FLUSHDB, an unproven sync -- not a close or a start)."""
        self.epoch += 1
        if self.store.entries:
            self.store.clear()
        if counted:
            self.stats.flushes += 1

    def _down(self) -> None:
        lost = self.live and not self._closed
        if lost:
            log.warning("near cache: invalidation link lost; local copies dropped until it is back")
        self.live = self.stats.link_up = False
        if self._up is not None:
            self._up.clear()
        self.fresh_until = 0.0
        self.flush(counted=lost)
        for _, waiter in self._pings.values():
            if waiter is not None and not waiter.done():
                with contextlib.suppress(RuntimeError):  # its loop is closed (abandon_connections)
                    waiter.set_exception(ConnectionError("near cache invalidation link lost"))
        self._pings.clear()
        self._probe = None

    async def _link_forever(self) -> None:
        delay = 0.05
        while not self._closed:
            try:
                await self._open_link()
                delay = 0.05
                await self._serve_link()
            except asyncio.CancelledError:
                self._down()
                raise
            except Exception as exc:  # any link failure: flush, reconnect
                self.stats.link_error = type(exc).__name__
                log.debug("near cache link failed: %s", type(exc).__name__)
            self._down()
            await self._hang_up()
            if self._closed:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _serve_link(self) -> None:
        """Read and ping until either fails; then both stop (the caller reconnects)."""
        reading = asyncio.ensure_future(self._read_forever())
        pinging = asyncio.ensure_future(self._heartbeat_forever())
        try:
            done, _ = await asyncio.wait((reading, pinging), return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises what ended it
        finally:
            for task in (reading, pinging):
                task.cancel()
            await asyncio.gather(reading, pinging, return_exceptions=True)

    async def _open_link(self) -> None:
        conn = self._conn = self._connect()
        await conn.connect()
        # Every write Redis runs after it turns tracking on is invalidated on this link; fills
        # start only once it is live, so this moment bounds staleness like a pong would.
        tracked_from = _monotonic()
        await conn.send_command("CLIENT", "ID")
        client_id = await conn.read_response()
        await conn.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX", self.prefix)
        await conn.read_response()
        await conn.send_command("SUBSCRIBE", CHANNEL)
        await conn.read_response()
        # Anything stored before this point missed the invalidations of the outage.
        self.flush(counted=False)
        self.live = self.stats.link_up = True
        self.stats.link_error = None
        self.fresh_until = tracked_from + self.config.max_staleness
        if self._up is not None:
            self._up.set()

    async def _ping(self, waiter: asyncio.Future[None] | None = None) -> None:
        self._seq += 1
        self._pings[self._seq] = (_monotonic(), waiter)
        await self._conn.send_command("PING", str(self._seq))

    async def _heartbeat_forever(self) -> None:
        interval = self.config.max_staleness / 4
        while True:
            if len(self._pings) > MAX_UNANSWERED:
                raise ConnectionError("near cache invalidation link stopped answering")
            await self._ping()
            await asyncio.sleep(interval)

    async def _read_forever(self) -> None:
        conn = self._conn
        while True:
            message = await conn.read_response(timeout=None)
            kind = message[0]
            if kind == b"message":
                self._invalidated(message[2])
            elif kind == b"pong":
                self._ponged(int(message[1]))

    def _ponged(self, seq: int) -> None:
        sent = self._pings.pop(seq, None)
        if sent is None:
            return
        sent_at, waiter = sent
        self.fresh_until = max(self.fresh_until, sent_at + self.config.max_staleness)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _invalidated(self, keys: list[bytes] | None) -> None:
        stats = self.stats
        if keys is None:  # FLUSHDB / FLUSHALL
            stats.invalidations += 1
            self.flush()
            return
        stats.invalidations += len(keys)
        probe = self._probe
        for raw in keys:
            key = raw.decode("utf-8", "surrogateescape")
            self.discard(key)
            if probe is not None and key == probe[0]:
                self._probe_invalidated()

    async def _hang_up(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect()

    # -- lifecycle ------------------------------------------------------------------------------
    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._down()
        await self._hang_up()
        await self._close()

    def abandon_connections(self) -> None:
        self._closed = True
        self._down()
        conn, self._conn = self._conn, None
        if conn is not None:
            hang_up([conn])
        self._abandon()

"""The Redis backend, on ``redis.asyncio`` with a bounded connection pool.

Design choices:
- a GET hit is one round trip (no TOUCH, no EXISTS first);
- tags are Redis sets, so ``invalidate_tags`` works across processes; a SET with tags is one
  MULTI round trip and keeps each tag set alive at least as long as its longest-lived member;
- a tagged write Redis refuses (WRONGTYPE: a tag's key holds no set) is undone: MULTI has no
  rollback, so the keys it wrote are unlinked before the failure is reported; a key that
  escaped its tags would survive ``invalidate_tags`` (``_undone_if_refused``);
- no call blocks Redis for long at any size: invalidations walk tag sets (SSCAN) and the keyspace
  (SCAN) in bounded batches, and statistics are a bounded random sample (``redis_usage``);
- redis-py's own retries are switched off: retrying is the facade's job, above the circuit
  breaker, so an open breaker never sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import validation
from .._extras import require
from .._urls import check_redis_url, default_redis_url, redact_url, url_error
from . import redis_lock, redis_otel, redis_usage
from ._connections import hang_up
from .base import REJECTED, RESERVED_CONNECTIONS, Backend, BackendInfo, BatchObserver, DriverTelemetry, Failure, Usage
from .redis_errors import classify_redis_error

log = logging.getLogger("yokedcache.redis")

if TYPE_CHECKING:
    from .autopipeline import AutoPipeliner

__all__ = ["RedisBackend"]


#: Members per SSCAN/UNLINK batch and keys per UNLINK: each call stays far below a millisecond.
BATCH = 500


class BackendClosedError(RuntimeError):
    """The backend was closed: a long invalidation or count stops instead of reconnecting."""


@dataclass(frozen=True)
class Opened:
    """What one Redis flavour builds from its URL (see :meth:`RedisBackend._open`)."""

    client: Any
    #: The connection pool, or ``None`` where the client keeps one per node (Cluster).
    pool: Any
    host: str | None
    port: int | None
    db: str
    #: Facts of this flavour for :attr:`BackendInfo.extra`, beside the URL and TLS.
    extra: dict[str, Any] = field(default_factory=dict)


def no_retries() -> Any:
    """redis-py's own retries, switched off: retrying is the facade's job, above the breaker."""
    retry_mod = require("redis.asyncio.retry", "redis")
    backoff = require("redis.backoff", "redis")
    return retry_mod.Retry(backoff.NoBackoff(), 0)


class RedisBackend(Backend):
    """Redis storage. ``redis_url`` may carry a password and ``rediss://`` for TLS.

    Without ``redis_url`` the ``YOKEDCACHE_REDIS_URL`` environment variable is used, then
    ``redis://localhost:6379/0``. The Cluster and Sentinel flavours are this class with another
    :meth:`_open` (how the client is built) and the few commands that differ.
    """

    remote = True
    loop_bound = True
    counts_keys = True
    #: The URL schemes a flavour serves, and its name where a URL of another is refused. ``()``:
    #: whatever redis-py reads (the facade picks the flavour by scheme: cache.py _make_backend).
    schemes: tuple[str, ...] = ()
    flavour = "Redis"

    @classmethod
    def serves(cls, url: str) -> bool:
        """Whether ``url``'s scheme is one of this flavour's (the facade picks the flavour by it)."""
        return url.split("://", 1)[0] in cls.schemes

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        max_connections: int = 50,
        socket_timeout: float | None = 1.0,
        connect_timeout: float = 1.0,
        scan_count: int = 1000,
        auto_pipeline: bool = True,
        **connection_kwargs: Any,
    ) -> None:
        require("redis.asyncio", "redis")
        validation.boolean("auto_pipeline", auto_pipeline)
        url = redis_url if redis_url is not None else default_redis_url()
        check_redis_url(url)
        if self.schemes and not self.serves(url):
            shown = redact_url(url)
            raise ValueError(f"redis_url: a {self.flavour} URL starts with {self.schemes[0]}://, got {shown!r}")
        validation.number("max_connections", max_connections, rule="must be a positive int", integer=True, minimum=1)
        # socket_timeout=None: the facade's per-operation deadline instead
        validation.number("socket_timeout", socket_timeout, rule="must be a positive number of seconds", minimum=0,
                          allow_zero=False, allow_none=True)  # fmt: skip
        validation.number("connect_timeout", connect_timeout, rule="must be a positive number of seconds", minimum=0,
                          allow_zero=False)  # fmt: skip

        self.max_connections: int = max_connections
        self.redacted_url = redact_url(url)
        self._scan_count = scan_count
        self._closed = False
        #: Bumped by every invalidation: statistics measured before it are stale.
        self.invalidations: int = 0
        self._estimate_sha: str | None = None
        opened = self._open(url, socket_timeout, connect_timeout, connection_kwargs)
        self._client, self._pool = opened.client, opened.pool
        self.info = BackendInfo(
            kind="redis",
            system="redis",
            host=opened.host,
            port=opened.port,
            db=opened.db,
            extra={"url": self.redacted_url, "tls": url.startswith("rediss"), **opened.extra},
        )
        self._install_auto_pipeline(auto_pipeline)

    def _open(
        self, url: str, socket_timeout: float | None, connect_timeout: float, connection_kwargs: dict[str, Any]
    ) -> Opened:
        """Build the client for ``url``: the one place where the flavours differ in set-up."""
        aioredis = require("redis.asyncio", "redis")
        try:
            # A plain pool, not redis-py's BlockingConnectionPool: its condition variable costs
            # about 6 µs more per command (get+release 11.7-13.3 vs 5.5-7.1 µs in two runs of
            # benchmarks/pool_cost.py), and it is not needed: the facade admits at most
            # max_connections operations (first come, first served) and RESERVED_CONNECTIONS
            # side calls, so the pool is never asked for more.
            pool = aioredis.ConnectionPool.from_url(
                url,
                max_connections=self.max_connections + RESERVED_CONNECTIONS,
                socket_timeout=socket_timeout,
                socket_connect_timeout=connect_timeout,
                retry=no_retries(),
                **connection_kwargs,
            )
            # Build (not connect) one connection now: a misspelt query parameter raises here, not
            # as a TypeError on every later command.
            pool.connection_class(**pool.connection_kwargs)
        except (ValueError, TypeError) as exc:
            raise url_error(exc, url) from None
        kw = pool.connection_kwargs
        host = kw.get("host") or kw.get("path")
        return Opened(
            client=aioredis.Redis(connection_pool=pool),
            pool=pool,
            host=str(host) if host else None,
            port=int(kw["port"]) if kw.get("port") is not None else None,
            db=str(kw.get("db", 0)),
        )

    def _new_pipeliner(self) -> AutoPipeliner:
        from .autopipeline import AutoPipeliner

        return AutoPipeliner(self)

    def _new_direct(self) -> AutoPipeliner | None:
        """The unpipelined fast path (``None``: redis-py's own commands, as on a cluster)."""
        from .autopipeline import DirectCommands

        return DirectCommands(self, limit=self.max_connections)

    def _install_auto_pipeline(self, enabled: bool) -> None:
        """Route GET/SET/DELETE/EXISTS/get_many/set_many through an auto-pipeliner (see
        :mod:`.autopipeline`): a lone command still goes out at once, commands issued together
        share one round trip. Its methods replace this instance's own, as
        :attr:`Backend.pipeliner` declares. Switched off, the same commands take the pipeliner's
        lone path one by one (``DirectCommands``): no batching, and no redis-py client layer."""
        validation.boolean("auto_pipeline", enabled)
        self.auto_pipeline = enabled
        self.pipeliner: AutoPipeliner | None = None
        self._direct: AutoPipeliner | None = None
        if enabled:
            p = self.pipeliner = self._new_pipeliner()
        else:
            p = self._direct = self._new_direct()
        if p is not None:
            self.get, self.delete, self.exists, self.get_many = p.get, p.delete, p.exists, p.get_many  # type: ignore[method-assign]
            self._install_tagged_writes(p.set, p.set_many)
            self.get_with_ttl = p.get_with_ttl  # type: ignore[method-assign,assignment]

    def _install_tagged_writes(self, plain_set: Any, plain_set_many: Any) -> None:
        """Bind ``set``/``set_many`` to the pipeliner's (or the direct path's): untagged writes
        take its awaitable as it is, tagged ones are undone if Redis refuses them
        (``_undone_if_refused``)."""

        def set(key: str, value: bytes, ttl: float | None, tags: Sequence[str] = ()) -> Awaitable[Any]:
            if not tags:  # nothing to refuse: the pipeliner's awaitable as it is
                return plain_set(key, value, ttl)  # type: ignore[no-any-return]
            return self._undone_if_refused(plain_set(key, value, ttl, tags), (key,))

        def set_many(items: Sequence[tuple[str, bytes]], ttl: float | None, tags: Sequence[str] = ()) -> Any:
            if not tags:
                return plain_set_many(items, ttl)
            return self._undone_if_refused(plain_set_many(items, ttl, tags), [k for k, _ in items])

        self.set, self.set_many = set, set_many  # type: ignore[method-assign]

    def driver_telemetry(self) -> DriverTelemetry:
        """redis-py's own OpenTelemetry: its COMMAND group misses what the pipeliner sends, and
        what the direct path (``auto_pipeline=False``, ``DirectCommands``) sends: both write
        commands on connections of their own, below redis-py's command layer."""
        return redis_otel.driver_telemetry(pipelined=self.pipeliner is not None or self._direct is not None)

    def observe_batches(self, observer: BatchObserver) -> None:
        """Tell ``observer`` (the cache's instrumentation) about every auto-pipelined batch."""
        if self.pipeliner is not None:
            self.pipeliner.observer = observer

    def classify_error(self, exc: BaseException) -> Failure | None:
        """What a redis-py exception means for the cache (see :mod:`.redis_errors`)."""
        return classify_redis_error(exc)

    @property
    def client(self) -> Any:
        """The redis-py client (``RedisCluster`` on a cluster) over this backend's connections.

        For commands the backend does not offer, and for a baseline that must share the pool to
        measure only the cache's own cost (``yokedcache bench``). The backend closes it.
        """
        return self._client

    @property
    def pool(self) -> Any:
        """The redis-py connection pool (``None`` on a cluster, which keeps a pool per node).

        The auto-pipeliner makes its batch connections from it, with the backend's settings;
        benchmarks build a raw client over it to compare like with like."""
        return self._pool

    def get(self, key: str) -> Awaitable[bytes | None]:
        # Not a coroutine of ours: redis-py's own command awaitable, so no frame of ours stays
        # on the stack for the round trip (an ``async def`` would). One plain call more than the
        # old ``self.get = self._client.get`` (about 15 ns against a 70-100 µs round trip), the
        # price of a declared method instead of a shadowed one. The facade binds it once.
        return self._client.get(key)  # type: ignore[no-any-return]

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        return await self._client.mget(keys)  # type: ignore[no-any-return]

    def _write_pipeline(self) -> Any:
        """One MULTI: a tagged write and its tag sets go out together (a refused command inside
        it fails alone, MULTI has no rollback: :meth:`_undone_if_refused` removes the rest)."""
        return self._client.pipeline(transaction=True)

    def queue_set(self, pipe: Any, key: str, value: bytes, ttl: float | None, tags: Sequence[str]) -> None:
        if ttl is None:
            pipe.set(key, value)
        else:
            pipe.set(key, value, px=max(1, int(ttl * 1000)))
        for tag in tags:
            pipe.sadd(tag, key)

    @staticmethod
    def queue_tag_expiry(pipe: Any, ttl: float | None, tags: Sequence[str]) -> None:
        # A tag set must outlive its longest-lived member: persist it for keys without TTL,
        # otherwise set an expiry if it has none (NX) or extend it (GT). Needs Redis >= 7.
        for tag in tags:
            if ttl is None:
                pipe.persist(tag)
            else:
                seconds = max(1, int(ttl + 0.999))
                pipe.expire(tag, seconds, nx=True)
                pipe.expire(tag, seconds, gt=True)

    def set(self, key: str, value: bytes, ttl: float | None, tags: Sequence[str] = ()) -> Awaitable[Any]:
        # As get: an untagged SET hands out redis-py's own command awaitable.
        if not tags:
            if ttl is None:
                return self._client.set(key, value)  # type: ignore[no-any-return]
            return self._client.set(key, value, px=max(1, int(ttl * 1000)))  # type: ignore[no-any-return]
        return self._set_tagged(key, value, ttl, tags)

    async def _set_tagged(self, key: str, value: bytes, ttl: float | None, tags: Sequence[str]) -> None:
        await self._undone_if_refused(self._write([(key, value)], ttl, tags), (key,))

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float | None, tags: Sequence[str] = ()) -> None:
        if not items:
            return
        write = self._write(items, ttl, tags)
        await (self._undone_if_refused(write, [k for k, _ in items]) if tags else write)

    async def _write(self, items: Sequence[tuple[str, bytes]], ttl: float | None, tags: Sequence[str]) -> None:
        async with self._write_pipeline() as pipe:
            for key, value in items:
                self.queue_set(pipe, key, value, ttl, tags)
            self.queue_tag_expiry(pipe, ttl, tags)
            await pipe.execute()

    async def _undone_if_refused(self, write: Awaitable[Any], keys: Sequence[str]) -> Any:
        """Await a tagged ``write``; if Redis refused one of its commands, unlink ``keys``.

        MULTI/EXEC has no rollback: when a tag's key holds another type, SADD fails with
        WRONGTYPE but the SET beside it succeeds, leaving a key that ``invalidate_tags`` can
        never reach. A cache may always forget, so the keys are removed (one more round trip,
        during which another reader may see the value) and the refusal is raised as it was.
        If that removal fails too, the error says so: the keys may remain until their TTL.
        """
        try:
            return await write
        except Exception as exc:
            failure = classify_redis_error(exc)
            if failure is None or failure.kind != REJECTED:
                raise  # timeouts, lost connections: not known to have written anything partial
            try:
                await self._client.unlink(*keys)
            except Exception as undo:
                # fail_open hands the caller False, not this error: the log says what may remain
                log.warning("a refused tagged write could not be undone (%s): %d key(s) may remain untagged until "
                            "their TTL", type(undo).__name__, len(keys))  # fmt: skip
                exc.add_note(f"the {len(keys)} key(s) this write set could not be removed ({type(undo).__name__}): "
                             "they may remain, untagged, until their TTL")  # fmt: skip
            raise

    async def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        return int(await self._client.unlink(*keys))

    async def exists(self, key: str) -> bool:
        return bool(await self._client.exists(key))

    def _check_open(self) -> None:
        if self._closed:
            raise BackendClosedError("the Redis backend is closed")

    # Hooks the cluster backend overrides: where SCAN runs, and how keys of many slots go.
    async def _scan_targets(self) -> list[Any]:
        return [None]

    async def _scan_step(self, target: Any, cursor: Any, pattern: str) -> tuple[Any, list[bytes]]:
        return await self._client.scan(cursor, match=pattern, count=self._scan_count)  # type: ignore[no-any-return]

    async def _unlink(self, keys: Sequence[bytes]) -> int:
        return int(await self._client.unlink(*keys))

    async def invalidate_pattern(self, pattern: str) -> int:
        """SCAN the whole keyspace (``COUNT scan_count``) and UNLINK matches in batches.

        SCAN has no index to use: this visits every key of the database, however few match
        (about 1 s per million keys here), but no single call blocks Redis for long. Keys that
        exist for the whole call are deleted; keys written meanwhile may or may not be.
        """
        deleted = 0
        try:
            for target in await self._scan_targets():
                batch: list[bytes] = []
                cursor: Any = 0
                while True:
                    self._check_open()
                    cursor, keys = await self._scan_step(target, cursor, pattern)
                    batch.extend(keys)
                    while len(batch) >= BATCH or (batch and not cursor):
                        self._check_open()
                        deleted += await self._unlink(batch[:BATCH])
                        del batch[:BATCH]
                    if not cursor:
                        break
        finally:
            self.invalidations += 1
        return deleted

    async def invalidate_tags(self, tag_keys: Sequence[str]) -> int:
        """Delete every member of each tag set in SSCAN batches of ``BATCH``, then the set.

        Each batch is ``SREM`` from the tag set *then* ``UNLINK`` of the keys, in that order, so
        a key tagged concurrently is always either deleted or still in its tag set (for the next
        invalidation): never left alive and untagged. The set disappears once it is empty.
        """
        deleted = 0
        try:
            for tag in tag_keys:
                deleted += await self._invalidate_tag(tag)
        finally:
            self.invalidations += 1
        return deleted

    async def _invalidate_tag(self, tag: str) -> int:
        client = self._client
        deleted = 0
        cursor: Any = 0
        while True:
            self._check_open()
            cursor, members = await client.sscan(tag, cursor, count=BATCH)
            for i in range(0, len(members), BATCH):
                chunk = members[i : i + BATCH]
                self._check_open()
                deleted += await self._forget_and_unlink(tag, chunk)
            if not cursor:
                return deleted

    async def _forget_and_unlink(self, tag: str, keys: Sequence[bytes]) -> int:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.srem(tag, *keys)
            pipe.unlink(*keys)
            _, unlinked = await pipe.execute()
        return int(unlinked)

    # -- locks: one per key across every process sharing this Redis (backends/redis_lock.py) --
    shared_locks = True

    async def acquire_lock(self, name: str, token: str, ttl: float) -> bool:
        return await redis_lock.acquire(self._client, name, token, ttl)

    async def release_lock(self, name: str, token: str) -> bool:
        return await redis_lock.release(self._client, name, token)

    async def lock_held(self, name: str) -> bool:
        return await redis_lock.held(self._client, name)

    async def ping(self) -> None:
        await self._client.ping()

    # -- near cache (backends/near_cache.py) ---------------------------------------------------
    def tracking_connection(self) -> Any:
        """A connection with this pool's settings (address, password, TLS, Sentinel master
        lookup) but RESP2: its invalidations arrive as Pub/Sub messages on ``SUBSCRIBE``."""
        # health_check_interval 0: redis-py's own PING-and-read before a command would race the
        # link's reader for the replies; the link checks itself with PINGs its reader answers.
        kwargs = {**self._pool.connection_kwargs, "protocol": 2, "health_check_interval": 0}
        if "maint_notifications_config" in kwargs:  # redis-py 7+: RESP3 only, so off here
            kwargs["maint_notifications_config"] = None
        return self._pool.connection_class(**kwargs)

    async def get_with_ttl(self, key: str) -> tuple[bytes | None, int]:
        # Not atomic, and need not be: a write between the two is invalidated on the link.
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.pttl(key)
            value, pttl = await pipe.execute()
        return value, int(pttl)

    # -- statistics ---------------------------------------------------------------------------
    def _db_index(self) -> int:
        return int(self._pool.connection_kwargs.get("db", 0) or 0)

    async def estimate_usage(
        self, prefix: str, *, max_age: float = 0.0, samples: int = redis_usage.DEFAULT_SAMPLES
    ) -> Usage:
        """Keys and bytes under the literal ``prefix``, estimated in O(1) (see ``redis_usage``);
        counted exactly when the database holds at most ``redis_usage.EXACT_LIMIT`` keys.

        ``max_age`` > 0 reuses a sample that any cache on this database shared within that many
        seconds; 0 draws a new one (and shares it). One round trip, one bounded Lua call.
        """
        from .._glob import escape_glob

        self._check_open()
        shared = redis_usage.STATS_ROOT + prefix
        ttl_ms = max(1000, int(max(max_age, 1.0) * 3000))
        args = [samples, prefix, escape_glob(prefix) + "*", int(max_age * 1000), ttl_ms, redis_usage.EXACT_LIMIT]
        exceptions = require("redis.exceptions", "redis")
        for attempt in (0, 1):
            if self._estimate_sha is None:
                self._estimate_sha = await self._client.script_load(redis_usage.ESTIMATE_LUA)
            try:
                # EVALSHA in a plain pipeline: redis-py's Script would add a SCRIPT EXISTS per call.
                async with self._client.pipeline(transaction=False) as pipe:
                    pipe.evalsha(self._estimate_sha, 1, shared, *args)
                    pipe.info("keyspace")
                    pipe.info("memory")
                    (raw, _reused), keyspace, memory = await pipe.execute()
                break
            except exceptions.NoScriptError:  # the server restarted or flushed its scripts
                self._estimate_sha = None
                if attempt:
                    raise
        sample = redis_usage.Sample.parse(raw)
        database = redis_usage.database_usage(keyspace, memory, self._db_index(), sample.dbsize)
        return redis_usage.combine([sample], database)

    async def count_keys(self, pattern: str, *, cpu_budget: float = 1.0) -> int:
        """Count keys matching ``pattern`` exactly, by a full SCAN paced to ``cpu_budget``.

        After each SCAN call that took ``t`` seconds this waits ``t * (1 / cpu_budget - 1)``, so
        the count's share of wall time -- an upper bound on both the client CPU and the Redis CPU
        it uses -- stays at ``cpu_budget`` (0.01 = 1 % of one core). Keys added or removed while
        it runs may or may not be counted, as SCAN guarantees; duplicates SCAN can return during
        a rehash are counted twice (rare).
        """
        validation.number("cpu_budget", cpu_budget, rule="must be a number in (0, 1]", minimum=0, maximum=1,
                          allow_zero=False)  # fmt: skip
        count = 0
        for target in await self._scan_targets():
            cursor: Any = 0
            while True:
                self._check_open()
                started = time.perf_counter()
                cursor, keys = await self._scan_step(target, cursor, pattern)
                count += len(keys)
                if not cursor:
                    break
                if cpu_budget < 1:
                    await asyncio.sleep((time.perf_counter() - started) * (1 / cpu_budget - 1))
        return count

    async def usage(self, pattern: str) -> Usage:
        """Exact keys matching ``pattern`` (a full, unpaced SCAN: O(keyspace)), bytes estimated.

        The cache never calls this on its own; it uses :meth:`estimate_usage`, and
        :meth:`count_keys` with a CPU budget when exact counts are asked for.
        """
        keys = await self.count_keys(pattern)
        return Usage(keys, 0, method="exact_keys", measured_at=time.time())

    def pool_stats(self) -> dict[str, Any]:
        pool = self._pool
        in_use = len(getattr(pool, "_in_use_connections", ()))
        # redis-py keeps a connection object whose connect failed: it is no idle socket
        idle = sum(1 for c in getattr(pool, "_available_connections", ()) if c.is_connected)
        direct = self._direct
        if direct is not None:  # auto_pipeline=False: operations use their own connections
            in_use += direct.in_use  # type: ignore[attr-defined]
            idle += direct.idle  # type: ignore[attr-defined]
        maximum = self.max_connections  # what operations may use; side work has its reserve
        return {
            "max_connections": maximum,
            "in_use": in_use,
            "idle": idle,
            "created": in_use + idle,
            "utilization": min(1.0, in_use / maximum),
            # the auto-pipeliner's own connections (at most 3), outside the pool
            "pipeline_connections": self.pipeliner.connections if self.pipeliner is not None else 0,
        }

    async def drop_idle_connections(self) -> None:
        """After an outage every idle socket points at a dead server; without this, each one
        fails its next command once (and can re-open the breaker right after it closed)."""
        await self._pool.disconnect(inuse_connections=False)
        for commands in (self.pipeliner, self._direct):
            if commands is not None:
                await commands.drop_idle_connections()

    def abandon_connections(self) -> None:
        """Hang up every pooled socket without the event loop that owns them (it is closed).

        The sockets' file descriptors go with the garbage collector; the server sees the hang-up
        now, so its connection count does not wait for a collection.
        """
        for commands in (self.pipeliner, self._direct):
            if commands is not None:
                commands.abandon_connections()
        pool = self._pool
        if pool is not None:
            hang_up([*getattr(pool, "_available_connections", ()), *getattr(pool, "_in_use_connections", ())])

    async def close(self) -> None:
        self._closed = True  # a running invalidation or count stops before its next command
        for commands in (self.pipeliner, self._direct):
            if commands is not None:
                await commands.close()
        await self._client.aclose()
        if self._pool is not None:  # the Cluster's pools are per node: aclose() closed them
            await self._pool.disconnect()

    def __repr__(self) -> str:
        return f"RedisBackend({self.redacted_url!r}, max_connections={self.max_connections})"

"""The Redis backend, on ``redis.asyncio`` with a bounded, blocking connection pool.

Design choices:
- a GET hit is one round trip (no TOUCH, no EXISTS first);
- tags are Redis sets, so ``invalidate_tags`` works across processes; a SET with tags is one
  MULTI round trip and keeps each tag set alive at least as long as its longest-lived member;
- redis-py's own retries are switched off: retrying is the facade's job, above the circuit
  breaker, so an open breaker never sleeps.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Sequence
from typing import Any

from .._extras import require
from .._urls import check_redis_url, redact_url
from .base import BackendInfo, Failure, Usage
from .redis_errors import classify_redis_error

__all__ = ["RedisBackend"]

DEFAULT_URL = "redis://localhost:6379/0"

# Deletes every member of each tag set (KEYS) and the sets, in batches small enough for unpack().
_INVALIDATE_TAGS_LUA = """
local deleted = 0
for _, tag in ipairs(KEYS) do
  local members = redis.call('SMEMBERS', tag)
  for i = 1, #members, 500 do
    deleted = deleted + redis.call('UNLINK', unpack(members, i, math.min(i + 499, #members)))
  end
  redis.call('UNLINK', tag)
end
return deleted
"""


class RedisBackend:
    """Redis storage. ``redis_url`` may carry a password and ``rediss://`` for TLS.

    Without ``redis_url`` the ``YOKEDCACHE_REDIS_URL`` environment variable is used, then
    ``redis://localhost:6379/0``.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        max_connections: int = 50,
        socket_timeout: float = 1.0,
        connect_timeout: float = 1.0,
        pool_timeout: float | None = None,
        scan_count: int = 1000,
        **connection_kwargs: Any,
    ) -> None:
        aioredis = require("redis.asyncio", "redis")
        retry_mod = require("redis.asyncio.retry", "redis")
        backoff = require("redis.backoff", "redis")

        url = redis_url if redis_url is not None else os.environ.get("YOKEDCACHE_REDIS_URL", DEFAULT_URL)
        check_redis_url(url)
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
            raise ValueError(f"max_connections: must be a positive int, got {max_connections!r}")
        for name, value in (("socket_timeout", socket_timeout), ("connect_timeout", connect_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name}: must be a positive number of seconds, got {value!r}")

        self._url = url
        self.max_connections = max_connections
        self.redacted_url = redact_url(url)
        self._scan_count = scan_count
        try:
            self._pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                # None: wait for a connection. The facade admits at most max_connections calls at
                # once (first come, first served), and each in-use connection is bounded by
                # socket_timeout, so a wait here is short; a timeout would turn load into errors.
                timeout=pool_timeout,
                socket_timeout=socket_timeout,
                socket_connect_timeout=connect_timeout,
                retry=retry_mod.Retry(backoff.NoBackoff(), 0),
                **connection_kwargs,
            )
        except (ValueError, TypeError) as exc:
            # redis-py's messages can quote the URL; never re-raise it with the password.
            raise ValueError(f"redis_url: cannot be used ({type(exc).__name__}) for {self.redacted_url}") from None
        self._client = aioredis.Redis(connection_pool=self._pool)
        # GET is the hot path: hand out redis-py's own method (it returns the command's
        # coroutine) instead of wrapping it in one more coroutine of ours.
        self.get = self._client.get
        self._invalidate_tags_script = self._client.register_script(_INVALIDATE_TAGS_LUA)

        kw = self._pool.connection_kwargs
        host = kw.get("host") or kw.get("path")
        self.info = BackendInfo(
            kind="redis",
            system="redis",
            host=str(host) if host else None,
            port=int(kw["port"]) if kw.get("port") is not None else None,
            db=str(kw.get("db", 0)),
            extra={"url": self.redacted_url, "tls": url.startswith("rediss://")},
        )

    @staticmethod
    def classify_error(exc: BaseException) -> Failure | None:
        """What a redis-py exception means for the cache (see :mod:`.redis_errors`)."""
        return classify_redis_error(exc)

    @property
    def client(self) -> Any:
        """The underlying ``redis.asyncio.Redis`` (shares this backend's pool)."""
        return self._client

    async def get(self, key: str) -> bytes | None:
        return await self._client.get(key)  # type: ignore[no-any-return]

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        return await self._client.mget(keys)  # type: ignore[no-any-return]

    def _write_pipeline(self) -> Any:
        """One MULTI: a tagged write and its tag sets land together or not at all."""
        return self._client.pipeline(transaction=True)

    def _queue_set(self, pipe: Any, key: str, value: bytes, ttl: float | None, tags: Sequence[str]) -> None:
        if ttl is None:
            pipe.set(key, value)
        else:
            pipe.set(key, value, px=max(1, int(ttl * 1000)))
        for tag in tags:
            pipe.sadd(tag, key)

    @staticmethod
    def _queue_tag_expiry(pipe: Any, ttl: float | None, tags: Sequence[str]) -> None:
        # A tag set must outlive its longest-lived member: persist it for keys without TTL,
        # otherwise set an expiry if it has none (NX) or extend it (GT). Needs Redis >= 7.
        for tag in tags:
            if ttl is None:
                pipe.persist(tag)
            else:
                seconds = max(1, int(ttl + 0.999))
                pipe.expire(tag, seconds, nx=True)
                pipe.expire(tag, seconds, gt=True)

    async def set(self, key: str, value: bytes, ttl: float | None, tags: Sequence[str] = ()) -> None:
        if not tags:
            if ttl is None:
                await self._client.set(key, value)
            else:
                await self._client.set(key, value, px=max(1, int(ttl * 1000)))
            return
        async with self._write_pipeline() as pipe:
            self._queue_set(pipe, key, value, ttl, tags)
            self._queue_tag_expiry(pipe, ttl, tags)
            await pipe.execute()

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float | None, tags: Sequence[str] = ()) -> None:
        if not items:
            return
        async with self._write_pipeline() as pipe:
            for key, value in items:
                self._queue_set(pipe, key, value, ttl, tags)
            self._queue_tag_expiry(pipe, ttl, tags)
            await pipe.execute()

    async def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        return int(await self._client.unlink(*keys))

    async def exists(self, key: str) -> bool:
        return bool(await self._client.exists(key))

    async def invalidate_pattern(self, pattern: str) -> int:
        deleted = 0
        batch: list[bytes] = []
        async for key in self._client.scan_iter(match=pattern, count=self._scan_count):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(await self._client.unlink(*batch))
                batch.clear()
        if batch:
            deleted += int(await self._client.unlink(*batch))
        return deleted

    async def invalidate_tags(self, tag_keys: Sequence[str]) -> int:
        if not tag_keys:
            return 0
        return int(await self._invalidate_tags_script(keys=list(tag_keys)))

    async def ping(self) -> None:
        await self._client.ping()

    async def usage(self, pattern: str) -> Usage:
        """SCAN the keys matching ``pattern`` and sum ``MEMORY USAGE`` per key, pipelined per batch.

        Costs one round trip per ``scan_count`` keys plus one per batch: run it in the background.
        """
        keys = size = 0
        batch: list[bytes] = []

        async def flush() -> int:
            async with self._client.pipeline(transaction=False) as pipe:
                for k in batch:
                    pipe.memory_usage(k, samples=0)
                results = await pipe.execute()
            batch.clear()
            return sum(int(r) for r in results if r)

        async for key in self._client.scan_iter(match=pattern, count=self._scan_count):
            keys += 1
            batch.append(key)
            if len(batch) >= 500:
                size += await flush()
        if batch:
            size += await flush()
        return Usage(keys, size)

    def pool_stats(self) -> dict[str, Any]:
        pool = self._pool
        in_use = len(getattr(pool, "_in_use_connections", ()))
        # redis-py keeps a connection object whose connect failed: it is no idle socket
        idle = sum(1 for c in getattr(pool, "_available_connections", ()) if c.is_connected)
        maximum = int(pool.max_connections)
        return {
            "max_connections": maximum,
            "in_use": in_use,
            "idle": idle,
            "created": in_use + idle,
            "utilization": in_use / maximum if maximum else 0.0,
        }

    async def drop_idle_connections(self) -> None:
        """After an outage every idle socket points at a dead server; without this, each one
        fails its next command once (and can re-open the breaker right after it closed)."""
        await self._pool.disconnect(inuse_connections=False)

    def abandon_connections(self) -> None:
        """Hang up every pooled socket without the event loop that owns them (it is closed).

        The sockets' file descriptors go with the garbage collector; the server sees the hang-up
        now, so its connection count does not wait for a collection.
        """
        pool = self._pool
        if pool is None:
            return
        conns = list(getattr(pool, "_available_connections", ())) + list(getattr(pool, "_in_use_connections", ()))
        for conn in conns:
            writer = getattr(conn, "_writer", None)
            sock = writer.get_extra_info("socket") if writer is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    async def close(self) -> None:
        await self._client.aclose()
        await self._pool.disconnect()

    def __repr__(self) -> str:
        return f"RedisBackend({self.redacted_url!r}, max_connections={self._pool.max_connections})"

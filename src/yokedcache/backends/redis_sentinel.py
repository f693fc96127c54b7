"""Sentinel-managed Redis: ``redis+sentinel://[user:password@]host:port[,host:port...]/service/db``.

The sentinels are asked for the current primary of ``service``; after a failover the next
connection goes to the new primary (redis-py's ``SentinelConnectionPool``). Everything else --
tags in MULTI, batched invalidation, sampled statistics -- is the plain Redis backend on that primary.
The password (in the URL's userinfo, else ``?password=``) is the primary's (``AUTH``); sentinels
that require one of their own take ``?sentinel_password=`` (and ``?sentinel_username=``).
"""

from __future__ import annotations

from typing import Any

from .._extras import require
from .._urls import SENTINEL_SCHEMES, check_redis_url, parse_sentinel_url, redact_url
from .base import RESERVED_CONNECTIONS, BackendInfo
from .redis import RedisBackend

__all__ = ["RedisSentinelBackend", "is_sentinel_url", "parse_sentinel_url"]


def is_sentinel_url(url: str) -> bool:
    return url.split("://", 1)[0] in SENTINEL_SCHEMES


class RedisSentinelBackend(RedisBackend):
    """The Redis backend on the primary that Redis Sentinel names for a service."""

    def __init__(
        self,
        redis_url: str,
        *,
        max_connections: int = 50,
        socket_timeout: float | None = 1.0,
        connect_timeout: float = 1.0,
        scan_count: int = 1000,
        auto_pipeline: bool = True,
        **connection_kwargs: Any,
    ) -> None:
        sentinel_mod = require("redis.asyncio.sentinel", "redis")
        retry_mod = require("redis.asyncio.retry", "redis")
        backoff = require("redis.backoff", "redis")
        check_redis_url(redis_url)
        if not is_sentinel_url(redis_url):
            raise ValueError(f"redis_url: a Sentinel URL starts with redis+sentinel://, got {redact_url(redis_url)!r}")
        target = parse_sentinel_url(redis_url)
        sentinels, service, db = target.sentinels, target.service, target.db
        self._url = redis_url
        self.max_connections = max_connections
        self.redacted_url = redact_url(redis_url)
        self._scan_count = scan_count
        self.service = service
        # redis-py's own retries off, as in RedisBackend: its default (3 retries, ~1 s backoff)
        # made one call against unreachable sentinels take ~4 s per sentinel.
        timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": connect_timeout,
                    "retry": retry_mod.Retry(backoff.NoBackoff(), 0)}  # fmt: skip
        sentinel_auth = {"username": target.sentinel_username, "password": target.sentinel_password}
        # Sentinel queries keep a per-read timeout even when the facade owns the commands' deadline.
        sentinel_kwargs = {**timeouts, "socket_timeout": socket_timeout or connect_timeout,
                           **{k: v for k, v in sentinel_auth.items() if v is not None}}  # fmt: skip
        self._sentinel = sentinel_mod.Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs, **timeouts)
        self._client = self._sentinel.master_for(
            service,
            db=db,
            username=target.username,
            password=target.password,
            ssl=redis_url.startswith("rediss"),
            # beyond the facade's admission limit: health pings and the usage refresh
            max_connections=max_connections + RESERVED_CONNECTIONS,
            **connection_kwargs,
        )
        self._pool = self._client.connection_pool
        self._init_state()
        self.get = self._client.get
        host, port = sentinels[0]
        self.info = BackendInfo(
            kind="redis",
            system="redis",
            host=host,
            port=port,
            db=str(db),
            extra={"url": self.redacted_url, "tls": redis_url.startswith("rediss"), "sentinel_service": service},
        )
        self._install_auto_pipeline(auto_pipeline)

    def pool_stats(self) -> dict[str, Any]:
        stats = super().pool_stats()
        stats["max_connections"] = self.max_connections
        stats["utilization"] = stats["in_use"] / self.max_connections
        return stats

    def __repr__(self) -> str:
        return f"RedisSentinelBackend({self.redacted_url!r}, service={self.service!r})"

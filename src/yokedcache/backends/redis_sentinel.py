"""Sentinel-managed Redis: ``redis+sentinel://[:password@]host:port[,host:port...]/service/db``.

The sentinels are asked for the current primary of ``service``; after a failover the next
connection goes to the new primary (redis-py's ``SentinelConnectionPool``). Everything else --
tags in MULTI, batched invalidation, sampled statistics -- is the plain Redis backend on that primary.
A password in the URL is the primary's (``AUTH``); the sentinels are contacted without one.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote, urlsplit

from .._extras import require
from .._urls import check_redis_url, redact_url
from .base import BackendInfo
from .redis import RedisBackend

__all__ = ["RedisSentinelBackend", "is_sentinel_url"]

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


def is_sentinel_url(url: str) -> bool:
    return url.split("://", 1)[0] in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> tuple[list[tuple[str, int]], str, int, str | None, str | None]:
    """(sentinels, service, db, username, password) from a ``redis+sentinel://`` URL."""
    parts = urlsplit(url)
    hosts = parts.netloc.rsplit("@", 1)[-1]
    sentinels = []
    for item in hosts.split(","):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"redis_url: sentinel addresses must be host:port, got {redact_url(url)!r}")
        sentinels.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError(f"redis_url: name the sentinel service, e.g. redis+sentinel://host:26379/mymaster/0, "
                         f"got {redact_url(url)!r}")  # fmt: skip
    db = path[1] if len(path) > 1 else "0"
    if not db.isdigit():
        raise ValueError(f"redis_url: database must be a number, got {redact_url(url)!r}")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return sentinels, path[0], int(db), username, password


class RedisSentinelBackend(RedisBackend):
    """The Redis backend on the primary that Redis Sentinel names for a service."""

    def __init__(
        self,
        redis_url: str,
        *,
        max_connections: int = 50,
        socket_timeout: float = 1.0,
        connect_timeout: float = 1.0,
        scan_count: int = 1000,
        **connection_kwargs: Any,
    ) -> None:
        sentinel_mod = require("redis.asyncio.sentinel", "redis")
        exceptions = require("redis.exceptions", "redis")
        check_redis_url(redis_url)
        if not is_sentinel_url(redis_url):
            raise ValueError(f"redis_url: a Sentinel URL starts with redis+sentinel://, got {redact_url(redis_url)!r}")
        sentinels, service, db, username, password = parse_sentinel_url(redis_url)
        self._url = redis_url
        self.max_connections = max_connections
        self.redacted_url = redact_url(redis_url)
        self._scan_count = scan_count
        self.service = service
        timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": connect_timeout}
        self._sentinel = sentinel_mod.Sentinel(sentinels, sentinel_kwargs=dict(timeouts), **timeouts)
        self._client = self._sentinel.master_for(
            service,
            db=db,
            username=username,
            password=password,
            ssl=redis_url.startswith("rediss"),
            # two beyond the facade's admission limit: health pings and the usage refresh
            max_connections=max_connections + 2,
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
        self.transient_errors = (
            exceptions.ConnectionError,
            exceptions.TimeoutError,
            OSError,
            asyncio.TimeoutError,
        )

    def pool_stats(self) -> dict[str, Any]:
        stats = super().pool_stats()
        stats["max_connections"] = self.max_connections
        stats["utilization"] = stats["in_use"] / self.max_connections
        return stats

    def __repr__(self) -> str:
        return f"RedisSentinelBackend({self.redacted_url!r}, service={self.service!r})"

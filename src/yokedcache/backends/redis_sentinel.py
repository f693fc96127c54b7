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
from .._urls import SENTINEL_SCHEMES, parse_sentinel_url
from .base import RESERVED_CONNECTIONS
from .redis import Opened, RedisBackend, no_retries

__all__ = ["RedisSentinelBackend", "parse_sentinel_url"]


class RedisSentinelBackend(RedisBackend):
    """The Redis backend on the primary that Redis Sentinel names for a service."""

    schemes = SENTINEL_SCHEMES
    flavour = "Sentinel"

    def _open(
        self, url: str, socket_timeout: float | None, connect_timeout: float, connection_kwargs: dict[str, Any]
    ) -> Opened:
        sentinel_mod = require("redis.asyncio.sentinel", "redis")
        target = parse_sentinel_url(url)
        # redis-py's own retries off, as in RedisBackend: its default (3 retries, ~1 s backoff)
        # made one call against unreachable sentinels take ~4 s per sentinel.
        timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": connect_timeout,
                    "retry": no_retries()}  # fmt: skip
        sentinel_auth = {"username": target.sentinel_username, "password": target.sentinel_password}
        # Sentinel queries keep a per-read timeout even when the facade owns the commands' deadline.
        sentinel_kwargs = {**timeouts, "socket_timeout": socket_timeout or connect_timeout,
                           **{k: v for k, v in sentinel_auth.items() if v is not None}}  # fmt: skip
        sentinel = sentinel_mod.Sentinel(target.sentinels, sentinel_kwargs=sentinel_kwargs, **timeouts)
        client = sentinel.master_for(
            target.service,
            db=target.db,
            username=target.username,
            password=target.password,
            ssl=url.startswith("rediss"),
            # beyond the facade's admission limit: health pings and the usage refresh
            max_connections=self.max_connections + RESERVED_CONNECTIONS,
            **connection_kwargs,
        )
        host, port = target.sentinels[0]
        return Opened(client, client.connection_pool, host, port, str(target.db), {"sentinel_service": target.service})

    @property
    def service(self) -> str:
        """The Sentinel service name whose primary this backend uses."""
        return str(self.info.extra["sentinel_service"])

    def __repr__(self) -> str:
        return f"RedisSentinelBackend({self.redacted_url!r}, service={self.service!r})"

"""Redis Cluster: ``redis+cluster://host:port/0`` (or ``rediss+cluster://``) selects this backend.

Keys are not forced into one hash slot (that would put the whole cache on one node), so
operations that span keys work per node instead of atomically:

- ``get_many`` is ``MGET`` per slot (``mget_nonatomic``); ``set_many`` and a tagged ``set`` are
  non-transactional pipelines grouped by node;
- ``invalidate_tags`` reads each tag set (``SMEMBERS``, one node) and ``UNLINK``s the members
  slot by slot: one round trip per slot touched, and a key tagged concurrently may survive;
- ``invalidate_pattern`` and the usage refresh ``SCAN`` every primary (one cursor per node);
- health pings every primary; pool figures add up every node's connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from .._extras import require
from .._urls import check_redis_url, redact_url
from .base import BackendInfo
from .redis import RedisBackend

__all__ = ["RedisClusterBackend"]

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0] in CLUSTER_SCHEMES


class RedisClusterBackend(RedisBackend):
    """The Redis backend on ``redis.asyncio.cluster.RedisCluster``."""

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
        cluster = require("redis.asyncio.cluster", "redis")
        check_redis_url(redis_url)
        if not is_cluster_url(redis_url):
            raise ValueError(f"redis_url: a cluster URL starts with redis+cluster://, got {redact_url(redis_url)!r}")
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
            raise ValueError(f"max_connections: must be a positive int, got {max_connections!r}")
        self._url = redis_url
        self.max_connections = max_connections
        self.redacted_url = redact_url(redis_url)
        self._scan_count = scan_count
        self._cluster_mod = cluster
        plain = redis_url.replace("+cluster", "", 1)
        try:
            self._client = cluster.RedisCluster.from_url(
                plain,
                max_connections=max_connections,  # per node; the facade admits max_connections calls in all
                socket_timeout=socket_timeout,
                socket_connect_timeout=connect_timeout,
                **connection_kwargs,
            )
        except (ValueError, TypeError) as exc:
            raise ValueError(f"redis_url: cannot be used ({type(exc).__name__}) for {self.redacted_url}") from None
        self._pool = None
        self.get = self._client.get
        node = self._client.get_default_node() or self._client.startup_nodes[0]
        self.info = BackendInfo(
            kind="redis",
            system="redis",
            host=str(node.host),
            port=int(node.port),
            db="0",
            extra={"url": self.redacted_url, "tls": redis_url.startswith("rediss"), "cluster": True},
        )

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        return await self._client.mget_nonatomic(keys)  # type: ignore[no-any-return]

    def _write_pipeline(self) -> Any:
        # Keys and their tag sets live in different slots: no MULTI, commands grouped by node.
        return self._client.pipeline()

    async def invalidate_tags(self, tag_keys: Sequence[str]) -> int:
        deleted = 0
        client = self._client
        for tag in tag_keys:
            members = list(await client.smembers(tag))
            for i in range(0, len(members), 500):
                deleted += int(await client.unlink(*members[i : i + 500]))
            await client.unlink(tag)
        return deleted

    async def ping(self) -> None:
        await self._client.ping(target_nodes=self._cluster_mod.RedisCluster.PRIMARIES)

    def _nodes(self) -> list[Any]:
        try:
            return list(self._client.get_nodes())
        except Exception:  # not initialised yet
            return []

    def pool_stats(self) -> dict[str, Any]:
        nodes = []
        for node in self._nodes():
            free = len(node._free)
            idle = sum(1 for c in node._free if c.is_connected)  # a failed connect leaves no socket
            nodes.append({"node": f"{node.host}:{node.port}", "in_use": len(node._connections) - free, "idle": idle})
        in_use = sum(n["in_use"] for n in nodes)
        idle = sum(n["idle"] for n in nodes)
        return {
            "max_connections": self.max_connections,
            "in_use": in_use,
            "idle": idle,
            "created": in_use + idle,
            "utilization": in_use / self.max_connections,
            "nodes": nodes,
        }

    async def drop_idle_connections(self) -> None:
        for node in self._nodes():
            await asyncio.gather(*(c.disconnect() for c in tuple(node._free)), return_exceptions=True)

    async def close(self) -> None:
        await self._client.aclose()

    def __repr__(self) -> str:
        return f"RedisClusterBackend({self.redacted_url!r}, max_connections={self.max_connections})"

"""Redis Cluster: ``redis+cluster://host:port/0`` (or ``rediss+cluster://``) selects this backend.

Keys are not forced into one hash slot (that would put the whole cache on one node), so
operations that span keys work per node instead of atomically:

- ``get_many`` is ``MGET`` per slot (``mget_nonatomic``); ``set_many`` and a tagged ``set`` are
  non-transactional pipelines grouped by node;
- ``invalidate_tags`` walks each tag set in ``SSCAN`` batches (one node), removes each batch from
  the set, then ``UNLINK``s it as one pipeline grouped by node. Writes are not atomic across
  nodes here, so a key tagged while the invalidation runs may survive it untagged;
- ``invalidate_pattern`` and exact counts ``SCAN`` every primary (one cursor per node) in
  bounded batches; the statistics sample runs on every primary (no shared result: the shared
  key would live on one node) and adds up.
- health pings every primary; pool figures add up every node's connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._extras import require
from .._urls import url_error
from . import redis_otel, redis_usage
from .base import MISCONFIGURED, DatabaseUsage, DriverTelemetry, Failure, Usage
from .redis import Opened, RedisBackend
from .redis_errors import classify_redis_error

if TYPE_CHECKING:
    from .autopipeline import AutoPipeliner

__all__ = ["RedisClusterBackend"]

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


class RedisClusterBackend(RedisBackend):
    """The Redis backend on ``redis.asyncio.cluster.RedisCluster``.

    ``max_connections`` is per node for redis-py; the facade admits that many calls in all.
    """

    def driver_telemetry(self) -> DriverTelemetry:
        """The cluster's pipeliner sends through redis-py's own client: its COMMAND group sees all."""
        return redis_otel.driver_telemetry(pipelined=False)

    schemes = CLUSTER_SCHEMES
    flavour = "cluster"

    def _open(
        self, url: str, socket_timeout: float | None, connect_timeout: float, connection_kwargs: dict[str, Any]
    ) -> Opened:
        cluster = require("redis.asyncio.cluster", "redis")
        try:
            client = cluster.RedisCluster.from_url(
                url.replace("+cluster", "", 1),
                max_connections=self.max_connections,
                socket_timeout=socket_timeout,
                socket_connect_timeout=connect_timeout,
                **connection_kwargs,
            )
        except (ValueError, TypeError, require("redis.exceptions", "redis").RedisClusterException) as exc:
            raise url_error(exc, url) from None
        node = client.get_default_node() or client.startup_nodes[0]
        # Keys and their tag sets live in different slots: writes are pipelines, not MULTI.
        commands = {"set_many": "PIPELINE", "set_tagged": "PIPELINE"}
        return Opened(client, None, str(node.host), int(node.port), "0", {"cluster": True, "commands": commands})

    def _new_pipeliner(self) -> AutoPipeliner:
        from .autopipeline import ClusterAutoPipeliner

        return ClusterAutoPipeliner(self)

    def _new_direct(self) -> AutoPipeliner | None:
        return None  # unpipelined, a cluster keeps redis-py's commands (they route by slot)

    def classify_error(self, exc: BaseException) -> Failure | None:
        """As for a single server, and a node without cluster mode is a configuration error that
        names the URL (redacted), the node and the fix."""
        failure = classify_redis_error(exc)
        if failure is not None and failure.kind == MISCONFIGURED:
            single = self.redacted_url.replace("+cluster", "", 1)
            reason = (f"redis_url {self.redacted_url} asks for a Redis Cluster, but {self.info.host}:{self.info.port} "
                      f"is {failure.reason}; use {single} for a single server")  # fmt: skip
            return Failure(MISCONFIGURED, reason, failure.code)
        return failure

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        return await self._client.mget_nonatomic(keys)  # type: ignore[no-any-return]

    def _write_pipeline(self) -> Any:
        # Keys and their tag sets live in different slots: no MULTI, commands grouped by node.
        return self._client.pipeline()

    async def _scan_targets(self) -> list[Any]:
        await self._client.initialize()
        return list(self._client.get_primaries())

    async def _scan_step(self, target: Any, cursor: Any, pattern: str) -> tuple[Any, list[bytes]]:
        cursors, keys = await self._client.scan(cursor, match=pattern, count=self._scan_count, target_nodes=target)
        return cursors[target.name], keys

    async def _unlink(self, keys: Sequence[bytes]) -> int:
        # One single-key UNLINK per key, pipelined: one round trip per node, not per slot.
        pipe = self._client.pipeline()
        for key in keys:
            pipe.execute_command("UNLINK", key)
        return sum(int(n) for n in await pipe.execute())

    async def _forget_and_unlink(self, tag: str, keys: Sequence[bytes]) -> int:
        await self._client.srem(tag, *keys)  # first: a key re-tagged meanwhile stays in the set
        return await self._unlink(keys)

    async def estimate_usage(
        self, prefix: str, *, max_age: float = 0.0, samples: int = redis_usage.DEFAULT_SAMPLES
    ) -> Usage:
        """The sample of the plain backend, drawn on every primary and added up."""
        from .._glob import escape_glob

        self._check_open()
        nodes = await self._scan_targets()
        per_node = max(1, samples // max(1, len(nodes)))
        args = [per_node, prefix, escape_glob(prefix) + "*", 0, 1000, redis_usage.EXACT_LIMIT // max(1, len(nodes))]
        client = self._client

        async def one(node: Any) -> tuple[redis_usage.Sample, dict[str, Any], dict[str, Any]]:
            raw, _ = await client.execute_command("EVAL", redis_usage.ESTIMATE_LUA, 0, *args, target_nodes=node)
            keyspace = await client.info("keyspace", target_nodes=node)
            memory = await client.info("memory", target_nodes=node)
            return redis_usage.Sample.parse(raw), keyspace, memory

        answers = await asyncio.gather(*(one(node) for node in nodes))
        samples_ = [a[0] for a in answers]
        dbs = [redis_usage.database_usage(ks, mem, 0, s.dbsize) for s, ks, mem in answers]
        database = DatabaseUsage(
            keys=sum(d.keys for d in dbs),
            keys_with_ttl=sum(d.keys_with_ttl or 0 for d in dbs),
            used_memory_bytes=sum(d.used_memory_bytes or 0 for d in dbs),
        )
        return redis_usage.combine(samples_, database)

    async def ping(self) -> None:
        await self._client.ping(target_nodes=self._client.PRIMARIES)

    def tracking_connection(self) -> Any:
        raise ValueError(
            "near_cache: not supported on Redis Cluster: each node sends invalidations only for its own "
            "slots, so coherence needs one tracking link per primary, re-made on every failover and "
            "resharding, and this version keeps one link; use a plain or Sentinel URL, or no near cache"
        )

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

    def __repr__(self) -> str:
        return f"RedisClusterBackend({self.redacted_url!r}, max_connections={self.max_connections})"

"""Names, units and attribute keys: the metric contract in one place.

Instrument names carry no unit or ``_total`` suffix: the OTel Prometheus exporter appends
``_seconds``/``_bytes``/``_total`` from the unit and kind, which yields exactly the series the
documentation promises (``yokedcache_cache_operation_duration_seconds`` and friends).
"""

from __future__ import annotations

from typing import Final

#: The semantic-conventions version our attribute names follow (stable database conventions).
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.37.0"
SCOPE_NAME: Final = "yokedcache"

# Instruments -------------------------------------------------------------------------------
GETS: Final = "yokedcache.cache.gets"
SETS: Final = "yokedcache.cache.sets"
DELETES: Final = "yokedcache.cache.deletes"
HITS: Final = "yokedcache.cache.hits"
MISSES: Final = "yokedcache.cache.misses"
INVALIDATIONS: Final = "yokedcache.cache.invalidations"
ERRORS: Final = "yokedcache.cache.errors"
EVICTIONS: Final = "yokedcache.cache.evictions"
CANCELLATIONS: Final = "yokedcache.cache.cancellations"
HIT_RATE: Final = "yokedcache.cache.hit_rate"
SIZE: Final = "yokedcache.cache.size"
KEYS_COUNT: Final = "yokedcache.cache.keys_count"
DURATION: Final = "yokedcache.cache.operation.duration"
HEALTH: Final = "yokedcache.cache.health"
BREAKER_STATE: Final = "yokedcache.cache.circuit_breaker.state"
BREAKER_OPENS: Final = "yokedcache.cache.circuit_breaker.opens"
POOL_CONNECTIONS: Final = "yokedcache.cache.pool.connections"
POOL_MAX: Final = "yokedcache.cache.pool.max"
POOL_UTILIZATION: Final = "yokedcache.cache.pool.utilization"
#: Connection-pool instruments of the database conventions (beside our pool.* gauges).
DB_CONNECTION_COUNT: Final = "db.client.connection.count"
DB_CONNECTION_MAX: Final = "db.client.connection.max"
DB_CONNECTION_PENDING: Final = "db.client.connection.pending_requests"
DB_CONNECTION_STATE: Final = "db.client.connection.state"
DB_CONNECTION_POOL_NAME: Final = "db.client.connection.pool.name"
#: The stable database conventions' operation histogram (Redis caches; on unless
#: ``CacheConfig(db_client_metrics=False)``). Recorded from the same measurement as DURATION.
DB_CLIENT_DURATION: Final = "db.client.operation.duration"
#: Cache operations per auto-pipelined round trip (histogram; Redis backends).
PIPELINE_BATCH_SIZE: Final = "yokedcache.cache.pipeline.batch_size"

# Cache-aside (get_or_set, @cached: cache_aside.py): recorded only off the hit path.
#: Factory runs, with ``outcome`` = ok / error.
COMPUTATIONS: Final = "yokedcache.cache.computations"
#: Callers served by another caller's computation, with ``scope`` = process / lock.
COALESCED: Final = "yokedcache.cache.coalesced"
#: How long a factory ran (histogram, seconds), with ``outcome``.
COMPUTE_DURATION: Final = "yokedcache.cache.compute.duration"
#: XFetch early recomputations started before the entry expired.
EARLY_REFRESHES: Final = "yokedcache.cache.early_refreshes"
#: Callers given an expired value because the factory failed (stale-on-error).
STALE_SERVES: Final = "yokedcache.cache.stale_serves"
ATTR_OUTCOME: Final = "outcome"
OUTCOME_OK: Final = "ok"
OUTCOME_ERROR: Final = "error"
ATTR_SCOPE: Final = "scope"
SCOPE_PROCESS: Final = "process"
SCOPE_LOCK: Final = "lock"
#: Bucket advisory for factory durations: from a fast lookup to a slow report.
COMPUTE_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: Near cache (docs/near-cache.md): GETs served from process memory and GETs that went on to
#: Redis (the seed's hits/misses still count every GET), keys Redis invalidated, whole-store
#: flushes (link lost, FLUSHDB), local entries and bytes, and the sampled invalidation lag.
NEAR_HITS: Final = "yokedcache.cache.near.hits"
NEAR_MISSES: Final = "yokedcache.cache.near.misses"
NEAR_INVALIDATIONS: Final = "yokedcache.cache.near.invalidations"
NEAR_FLUSHES: Final = "yokedcache.cache.near.flushes"
NEAR_ENTRIES: Final = "yokedcache.cache.near.entries"
NEAR_SIZE: Final = "yokedcache.cache.near.size"
NEAR_INVALIDATION_LAG: Final = "yokedcache.cache.near.invalidation_lag"
NEAR_UNITS: Final = {
    NEAR_HITS: "{hit}", NEAR_MISSES: "{miss}", NEAR_INVALIDATIONS: "{invalidation}", NEAR_FLUSHES: "{flush}",
    NEAR_ENTRIES: "{entry}", NEAR_SIZE: "By", NEAR_INVALIDATION_LAG: "s",
}  # fmt: skip
#: Invalidation lag buckets (seconds): loopback is tens of µs, a cloud hop hundreds.
NEAR_LAG_BUCKETS: Final = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

#: Every built-in instrument and its unit (the Prometheus exporter derives name suffixes from it).
#: No gauge uses unit ``1``: the Collector's Prometheus naming (Go otlptranslator) appends
#: ``_ratio`` to a gauge of unit ``1`` and the Python exporter does not, so the two paths would
#: name it differently. Ratios carry the annotation ``{ratio}`` (dropped by both), and the 0/1
#: health flag no unit, like the breaker state: one Prometheus name on every path.
BUILT_IN_UNITS: Final = {
    GETS: "{get}", SETS: "{set}", DELETES: "{delete}", HITS: "{hit}", MISSES: "{miss}",
    INVALIDATIONS: "{invalidation}", ERRORS: "{error}", EVICTIONS: "{eviction}", CANCELLATIONS: "{cancellation}",
    HIT_RATE: "{ratio}", SIZE: "By",
    KEYS_COUNT: "{key}", DURATION: "s", HEALTH: "", BREAKER_STATE: "", BREAKER_OPENS: "{open}",
    POOL_CONNECTIONS: "{connection}", POOL_MAX: "{connection}", POOL_UTILIZATION: "{ratio}",
    DB_CONNECTION_COUNT: "{connection}", DB_CONNECTION_MAX: "{connection}", DB_CONNECTION_PENDING: "{request}",
    PIPELINE_BATCH_SIZE: "{operation}", DB_CLIENT_DURATION: "s",
    COMPUTATIONS: "{computation}", COALESCED: "{call}", COMPUTE_DURATION: "s", EARLY_REFRESHES: "{refresh}",
    STALE_SERVES: "{call}",
}  # fmt: skip

#: ``yokedcache.cache.circuit_breaker.state`` values (alert on ``== 2``).
BREAKER_STATE_VALUES: Final = {"closed": 0, "half_open": 1, "open": 2}

#: Bucket advisory in seconds: sub-millisecond resolution for memory and loopback Redis,
#: up to seconds for a struggling server. Includes the documented 0.001 and 0.01 edges.
DURATION_BUCKETS: Final = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

#: ``db.client.operation.duration``'s bucket advice, as the stable database conventions give it.
DB_CLIENT_DURATION_BUCKETS: Final = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)

#: Bucket advisory for the batch-size histogram: powers of two up to far beyond a pool's callers.
BATCH_SIZE_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)

# Metric attribute keys (low cardinality by construction: never a key, value or tag) -------
ATTR_OPERATION: Final = "operation"
ATTR_RESULT: Final = "result"
ATTR_ERROR_TYPE: Final = "error.type"
ATTR_POOL_STATE: Final = "state"  # used / idle, as db.client.connection.state
#: Which cache (``CacheConfig.name``): on every metric point and span. No semantic convention
#: names a cache yet (semantic-conventions#1747); Prometheus shows it as ``cache_name``.
CACHE_NAME: Final = "cache.name"

# Span attribute keys (stable database semantic conventions) -------------------------------
DB_SYSTEM_NAME: Final = "db.system.name"
DB_OPERATION_NAME: Final = "db.operation.name"
DB_NAMESPACE: Final = "db.namespace"
DB_BATCH_SIZE: Final = "db.operation.batch.size"
DB_QUERY_SUMMARY: Final = "db.query.summary"
DB_RESPONSE_STATUS_CODE: Final = "db.response.status_code"
CACHE_OPERATION: Final = "yokedcache.cache.operation"  # our verb: get, set_many, invalidate_tags, ...
CACHE_KEYS: Final = "yokedcache.cache.keys"  # keys a multi-key operation names (MGET is one command)
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
CACHE_HIT: Final = "yokedcache.cache.hit"
CACHE_KEY: Final = "yokedcache.cache.key"
CACHE_BACKEND: Final = "yokedcache.backend"
CACHE_CANCELLED: Final = "yokedcache.cache.cancelled"
#: On a get_or_set / @cached span: whether the value came from the cache (Sentry's cache spans'
#: name, as no OTel cache convention exists yet).
SPAN_CACHE_HIT: Final = "cache.hit"
#: On a get_or_set span: how the value was obtained (hit, computed, coalesced, stale).
ASIDE_SOURCE: Final = "yokedcache.cache.source"
#: On a PIPELINE span: the cache operations it carried (db.operation.batch.size counts commands).
PIPELINE_OPERATIONS: Final = "yokedcache.pipeline.operations"
#: The span name and db.operation.name of an auto-pipelined batch (semantic conventions' value).
PIPELINE: Final = "PIPELINE"

# Cache operations: the ``operation`` metric attribute and (upper-cased) db.operation.name --
OP_GET: Final = "get"
OP_SET: Final = "set"
OP_DELETE: Final = "delete"
OP_EXISTS: Final = "exists"
OP_GET_MANY: Final = "get_many"
OP_SET_MANY: Final = "set_many"
OP_INVALIDATE_PATTERN: Final = "invalidate_pattern"
OP_INVALIDATE_TAGS: Final = "invalidate_tags"
OP_CLEAR: Final = "clear"
OPERATIONS: Final = (
    OP_GET, OP_SET, OP_DELETE, OP_EXISTS, OP_GET_MANY, OP_SET_MANY,
    OP_INVALIDATE_PATTERN, OP_INVALIDATE_TAGS, OP_CLEAR,
)  # fmt: skip


def error_type(exc: BaseException) -> str:
    """``error.type`` value: the exception's fully-qualified class name (builtins unqualified)."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


#: Instruments whose documented (seed) name is not simply the OTel name minus ``yokedcache.``.
_DOCUMENTED = {SIZE: "cache.size_bytes", DURATION: "cache.operation_duration"}


def documented_name(instrument_name: str) -> str:
    """The name push-style collectors see: ``yokedcache.cache.gets`` -> ``cache.gets``.

    Application metrics recorded through the shim (``user.login``) pass through unchanged.
    """
    found = _DOCUMENTED.get(instrument_name)
    if found is not None:
        return found
    return instrument_name[len("yokedcache.") :] if instrument_name.startswith("yokedcache.") else instrument_name


#: The Redis command each operation sends, for ``db.operation.name`` and ``db.query.summary``
#: (stable database conventions: the command; a transaction is ``MULTI``). Invalidations walk
#: the keyspace or a tag set and delete in batches: named after the walk.
REDIS_COMMANDS: Final = {
    OP_GET: "GET", OP_SET: "SET", OP_DELETE: "UNLINK", OP_EXISTS: "EXISTS", OP_GET_MANY: "MGET",
    OP_SET_MANY: "MULTI", OP_INVALIDATE_PATTERN: "SCAN", OP_INVALIDATE_TAGS: "SSCAN", OP_CLEAR: "SCAN",
}  # fmt: skip
#: A SET with tags is one MULTI (the value and its tag sets land together).
REDIS_TAGGED_SET: Final = "MULTI"

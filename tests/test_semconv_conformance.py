"""Semantic-conventions conformance: every operation on every backend, span and metric.

The expected table below is docs/telemetry.md's "Telemetry reference"; the last test renders it and
checks that page carries it verbatim, so documentation and behaviour cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from yokedcache import CacheConfig, YokedCache
from yokedcache.telemetry import semconv as sc

from .test_redis_cluster import cluster  # noqa: F401  (module-scoped fixtures: real servers)
from .test_redis_sentinel import sentinel  # noqa: F401

README = Path(__file__).resolve().parent.parent / "docs" / "telemetry.md"  # the reference moved there

#: operation -> (Redis span name = db.query.summary = db.operation.name, extra span attributes)
REDIS_SPANS = {
    "get": ("GET", "yokedcache.cache.hit"),
    "set": ("SET", ""),
    "set (with tags)": ("MULTI", ""),
    "delete": ("UNLINK", ""),
    "exists": ("EXISTS", ""),
    "get_many": ("MGET", "yokedcache.cache.keys, yokedcache.cache.hit"),
    "set_many": ("MULTI", "yokedcache.cache.keys, db.operation.batch.size (2 or more keys)"),
    "invalidate_pattern": ("SCAN", ""),
    "invalidate_tags": ("SSCAN", ""),
    "clear": ("SCAN", ""),
}
REDIS_COMMON = (
    "db.system.name, db.namespace, server.address, server.port, cache.name, yokedcache.backend, "
    "yokedcache.cache.operation"
)


#: Where Redis Cluster names an operation otherwise (keys and tag sets live in different slots).
CLUSTER_NAMES = {"set (with tags)": "PIPELINE", "set_many": "PIPELINE"}
SEMCONV_DOC = README.parent / "semconv.md"


def metric_table() -> str:
    """docs/semconv.md's table of db.client.operation.duration per operation and flavour."""
    rows = [
        "| operation | `db.operation.name` = `db.query.summary`: Redis, Sentinel | Redis Cluster |",
        "|---|---|---|",
    ]
    for op, (name, _) in REDIS_SPANS.items():
        rows.append(f"| `{op}` | `{name}` | `{CLUSTER_NAMES.get(op, name)}` |")
    return "\n".join(rows)


def reference_table() -> str:
    rows = [
        "| operation | Redis span (CLIENT): name = `db.query.summary` = `db.operation.name` | memory span (INTERNAL) "
        "| extra attributes |",
        "|---|---|---|---|",
    ]
    for op, (name, extra) in REDIS_SPANS.items():
        verb = op.split(" ")[0]
        rows.append(f"| `{op}` | `{name}` | `yokedcache {verb}` | {extra or '—'} |")
    return "\n".join(rows)


async def run(cache: YokedCache, op: str) -> None:
    calls = {
        "get": lambda: cache.get("k"),
        "set": lambda: cache.set("k", 1),
        "set (with tags)": lambda: cache.set("k", 1, tags=["t"]),
        "delete": lambda: cache.delete("k"),
        "exists": lambda: cache.exists("k"),
        "get_many": lambda: cache.get_many(["a", "b"]),
        "set_many": lambda: cache.set_many({"a": 1, "b": 2}),
        "invalidate_pattern": lambda: cache.invalidate_pattern("a*"),
        "invalidate_tags": lambda: cache.invalidate_tags(["t"]),
        "clear": lambda: cache.clear(),
    }
    await calls[op]()


@pytest.mark.parametrize("op", list(REDIS_SPANS))
async def test_every_operation_follows_the_conventions_on_every_backend(op, backend_kind, backend_settings, telemetry):
    kw: dict = {"meter_provider": telemetry.meter_provider, "tracer_provider": telemetry.tracer_provider,
                "enable_tracing": True, **backend_settings}  # fmt: skip
    async with YokedCache(CacheConfig(**kw)) as cache:
        await run(cache, op)
        metrics = telemetry.metrics(keep_name=True)
        instruments = telemetry.instruments()
    (span,) = telemetry.spans.get_finished_spans()
    attrs = dict(span.attributes)
    verb = op.split(" ")[0]
    assert span.status.status_code is StatusCode.UNSET
    assert attrs[sc.CACHE_NAME] == backend_kind and attrs[sc.CACHE_OPERATION] == verb
    if backend_kind == "redis":
        name = REDIS_SPANS[op][0]
        assert span.kind is SpanKind.CLIENT and span.name == name
        assert attrs[sc.DB_OPERATION_NAME] == attrs[sc.DB_QUERY_SUMMARY] == name
        assert attrs[sc.DB_SYSTEM_NAME] == "redis" and attrs[sc.DB_NAMESPACE] == "0"
        assert attrs[sc.SERVER_ADDRESS] == "127.0.0.1" and isinstance(attrs[sc.SERVER_PORT], int)
        assert attrs.get(sc.DB_BATCH_SIZE, 2) >= 2  # never 1
        (point,) = [p for a, p in metrics[sc.DB_CLIENT_DURATION]]
        metric, _ = instruments[sc.DB_CLIENT_DURATION]
        assert metric.unit == "s" and tuple(point.explicit_bounds) == sc.DB_CLIENT_DURATION_BUCKETS
        assert dict(point.attributes) == {
            sc.CACHE_NAME: "redis", sc.DB_SYSTEM_NAME: "redis", sc.DB_NAMESPACE: "0", sc.DB_OPERATION_NAME: name,
            sc.DB_QUERY_SUMMARY: name, sc.SERVER_ADDRESS: "127.0.0.1", sc.SERVER_PORT: attrs[sc.SERVER_PORT],
        }  # fmt: skip
        assert point.count == 1 and point.sum == (span.end_time - span.start_time) / 1e9  # the span's own
    else:
        assert span.kind is SpanKind.INTERNAL and span.name == f"yokedcache {verb}"
        assert not [k for k in attrs if k.startswith(("db.", "server."))]  # no database it is not
        assert sc.DB_CLIENT_DURATION not in metrics
    (point,) = [p for a, p in metrics[sc.DURATION] if a[sc.ATTR_OPERATION] == verb]
    assert dict(point.attributes) == {sc.CACHE_NAME: backend_kind, sc.ATTR_OPERATION: verb}
    assert tuple(point.explicit_bounds) == sc.DURATION_BUCKETS and sc.DURATION_BUCKETS[-1] == 10.0


async def test_a_redis_error_reply_sets_the_status_code_and_the_original_error_type(redis_url, telemetry):
    import redis

    raw = redis.Redis.from_url(redis_url)
    raw.rpush("yokedcache:k", "x")  # a list where the cache expects a string: WRONGTYPE
    raw.close()
    config = CacheConfig(redis_url=redis_url, tracer_provider=telemetry.tracer_provider,
                         meter_provider=telemetry.meter_provider)  # fmt: skip
    async with YokedCache(config) as cache:
        assert await cache.get("k", "dflt") == "dflt"
    (span,) = telemetry.spans.get_finished_spans()
    attrs = dict(span.attributes)
    assert span.status.status_code is StatusCode.ERROR
    assert attrs[sc.DB_RESPONSE_STATUS_CODE] == "WRONGTYPE"
    assert attrs[sc.ERROR_TYPE] == "redis.exceptions.ResponseError"  # the original, not our wrapper
    (point,) = [p for _, p in telemetry.metrics(keep_name=True)[sc.DB_CLIENT_DURATION]]
    assert dict(point.attributes) == {
        sc.CACHE_NAME: "redis", sc.DB_SYSTEM_NAME: "redis", sc.DB_NAMESPACE: "0", sc.DB_OPERATION_NAME: "GET",
        sc.DB_QUERY_SUMMARY: "GET", sc.SERVER_ADDRESS: "127.0.0.1", sc.SERVER_PORT: attrs[sc.SERVER_PORT],
        sc.ERROR_TYPE: "redis.exceptions.ResponseError", sc.DB_RESPONSE_STATUS_CODE: "WRONGTYPE",
    }  # fmt: skip
    assert point.sum == (span.end_time - span.start_time) / 1e9


async def test_a_failed_tagged_set_is_a_multi_on_the_metric_as_on_its_span(redis_url, telemetry):
    import redis

    from yokedcache.cache import TAG_ROOT

    raw = redis.Redis.from_url(redis_url)
    raw.set(f"{TAG_ROOT}yokedcache:t", "not a set")  # the tag's set is a string: SADD fails, WRONGTYPE
    raw.close()
    config = CacheConfig(redis_url=redis_url, tracer_provider=telemetry.tracer_provider,
                         meter_provider=telemetry.meter_provider)  # fmt: skip
    async with YokedCache(config) as cache:
        assert await cache.set("k", 1, tags=["t"]) is False
    (span,) = telemetry.spans.get_finished_spans()
    (point,) = [p for _, p in telemetry.metrics(keep_name=True)[sc.DB_CLIENT_DURATION]]
    assert span.name == point.attributes[sc.DB_OPERATION_NAME] == point.attributes[sc.DB_QUERY_SUMMARY] == "MULTI"
    assert point.attributes[sc.ERROR_TYPE] == span.attributes[sc.ERROR_TYPE]


@pytest.fixture(params=["cluster", "sentinel"])
def flavour_url(request: pytest.FixtureRequest) -> str:
    """A Redis Cluster of three primaries, or a primary found through Sentinel (database 2)."""
    if request.param == "cluster":
        from redis.cluster import RedisCluster

        cluster = request.getfixturevalue("cluster")
        client = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
        client.flushall(target_nodes=RedisCluster.PRIMARIES)
        client.close()
        return str(cluster.url())
    return str(request.getfixturevalue("sentinel").url(db=2))


@pytest.mark.parametrize("op", list(REDIS_SPANS))
async def test_cluster_and_sentinel_record_the_stable_metric_as_their_span_says(op, flavour_url, telemetry):
    """Each flavour names its commands and its server itself; the metric must say what the span says."""
    config = CacheConfig(redis_url=flavour_url, meter_provider=telemetry.meter_provider, name="flavour",
                         tracer_provider=telemetry.tracer_provider, fail_open=False)  # fmt: skip
    async with YokedCache(config) as cache:
        await run(cache, op)
        metrics = telemetry.metrics(keep_name=True)
    (span,) = telemetry.spans.get_finished_spans()
    (point,) = [p for _, p in metrics[sc.DB_CLIENT_DURATION]]
    attrs = dict(span.attributes)
    expected = {k: attrs[k] for k in (sc.DB_SYSTEM_NAME, sc.DB_NAMESPACE, sc.DB_OPERATION_NAME, sc.DB_QUERY_SUMMARY,
                                      sc.SERVER_ADDRESS, sc.SERVER_PORT) if k in attrs}  # fmt: skip
    assert dict(point.attributes) == {sc.CACHE_NAME: "flavour", **expected}
    assert {sc.DB_SYSTEM_NAME, sc.DB_OPERATION_NAME, sc.DB_QUERY_SUMMARY, sc.SERVER_ADDRESS} <= expected.keys()
    assert expected[sc.DB_OPERATION_NAME] == span.name and expected[sc.DB_SYSTEM_NAME] == "redis"
    table = CLUSTER_NAMES if "cluster" in flavour_url else {}
    assert span.name == table.get(op, REDIS_SPANS[op][0])  # the row of docs/semconv.md's table
    assert point.count == 1 and point.sum == (span.end_time - span.start_time) / 1e9


def test_the_readme_carries_this_table_as_the_telemetry_reference():
    assert reference_table() in README.read_text()


def test_docs_semconv_carries_the_metric_table():
    assert metric_table() in SEMCONV_DOC.read_text()

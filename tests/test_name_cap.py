"""One name cap everywhere: every family, spans, health and the status page fold the same names.

1,000 caches of 1,000 names report into one ``CacheMetrics``: a real scrape of ``/metrics`` and
of ``/status.json`` over HTTP, finished spans and health reports all name the same first 64
(by registration) and ``_other`` for the rest, and the choice survives caches closing and new
ones arriving.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections import defaultdict

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from yokedcache import CacheConfig, YokedCache
from yokedcache.backends.base import BackendInfo
from yokedcache.monitoring import CacheMetrics, PrometheusCollector
from yokedcache.telemetry import semconv as sc
from yokedcache.telemetry.names import MAX_CACHE_NAMES, OTHER_NAME, NameCap

NAMES = 1000
SERIES = re.compile(r'^(\w+)\{[^}]*cache_name="([^"]*)"', re.M)


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.read()


def _names_by_family(exposition: str) -> dict[str, set[str]]:
    families: dict[str, set[str]] = defaultdict(set)
    for series, name in SERIES.findall(exposition):
        family = re.sub(r"_(bucket|count|sum|created)$", "", series)
        families[family].add(name)
    return families


async def test_a_thousand_names_give_at_most_65_per_family_and_the_page_matches_the_exporter(redis_url):
    collector = PrometheusCollector(port=0)
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    metrics = CacheMetrics([collector])
    names = [f"tenant-{i:04d}" for i in range(NAMES)]
    # every tenth cache is on Redis (pool gauges, db.* spans), the others in memory
    caches = [
        YokedCache(CacheConfig(name=n, metrics=metrics, tracer_provider=tp, enable_tracing=True,
                               db_client_metrics=True, redis_url=redis_url if i % 10 == 0 else None))
        for i, n in enumerate(names)
    ]  # fmt: skip
    try:
        for cache in caches:
            await cache.set("k", 1)
            await cache.get("k")
            await cache.get("missing")
        admitted = set(names[:MAX_CACHE_NAMES])
        expected = admitted | {OTHER_NAME}

        text = (await asyncio.to_thread(_fetch, f"{collector.url}/metrics")).decode()
        families = _names_by_family(text)
        assert f"{collector.prefix}_cache_operation_duration_seconds" in families
        assert "db_client_operation_duration_seconds" in families
        for family, seen in families.items():
            assert len(seen) <= MAX_CACHE_NAMES + 1, (family, len(seen))
            assert seen <= expected, (family, sorted(seen - expected)[:5])
        assert families[f"{collector.prefix}_cache_operation_duration_seconds"] == expected

        doc = json.loads(await asyncio.to_thread(_fetch, f"{collector.url}/status.json"))
        rows = {c["name"] for c in doc["caches"]}
        exported = families[f"{collector.prefix}_cache_gets_total"]
        assert rows == exported == expected
        other = next(c for c in doc["caches"] if c["name"] == OTHER_NAME)
        assert other["instances"] == NAMES - MAX_CACHE_NAMES

        spans = {dict(s.attributes)[sc.CACHE_NAME] for s in exporter.get_finished_spans()}
        assert spans == expected
        reports = [await caches[i].detailed_health_check() for i in (0, MAX_CACHE_NAMES - 1, MAX_CACHE_NAMES, 999)]
        assert [r["name"] for r in reports] == [names[0], names[MAX_CACHE_NAMES - 1], OTHER_NAME, OTHER_NAME]

        # Stable while caches come and go: the first 32 close, 40 new names arrive; no row moves.
        for cache in caches[:32]:
            await cache.close()
        newcomers = [YokedCache(CacheConfig(name=f"late-{i}", metrics=metrics)) for i in range(40)]
        for cache in newcomers:
            await cache.get("k")
        caches.extend(newcomers)
        assert {c.telemetry.label for c in newcomers} == {OTHER_NAME}
        text = (await asyncio.to_thread(_fetch, f"{collector.url}/metrics")).decode()
        assert _names_by_family(text)[f"{collector.prefix}_cache_gets_total"] == expected  # closed: counts stay
        doc = json.loads(await asyncio.to_thread(_fetch, f"{collector.url}/status.json"))
        assert {c["name"] for c in doc["caches"]} == expected - set(names[:32])  # live rows only
    finally:
        for cache in caches:
            await cache.close()
        metrics.shutdown()
        tp.shutdown()


def test_the_cap_keeps_registration_order_and_never_reuses_a_slot():
    cap = NameCap(limit=3)
    labels = [cap.label(n) for n in ("a", "b", "a", "c", "d", "b", "e")]
    assert labels == ["a", "b", "a", "c", OTHER_NAME, "b", OTHER_NAME]
    assert cap.admitted() == ["a", "b", "c"]


@pytest.mark.parametrize("reserved", [OTHER_NAME])
def test_reserved_names_are_refused(reserved):
    with pytest.raises(ValueError, match=r"name: '_other' is reserved"):
        CacheConfig(name=reserved)
    with pytest.raises(ValueError, match=r"kind: '_other' is reserved"):
        BackendInfo(kind=reserved)


@pytest.mark.parametrize("kind", ["<img src=x>", "a\nb", "k" * 10_000, ""])
def test_a_backend_kind_is_checked_before_it_becomes_a_label(kind):
    with pytest.raises(ValueError, match=r"^kind: ") as info:
        BackendInfo(kind=kind)
    assert len(str(info.value)) < 250


def test_a_config_cannot_be_changed_after_its_checks():
    import dataclasses

    cfg = CacheConfig(name="catalog")
    for field, value in (("name", "<img src=x>"), ("name", "a\nb"), ("enable_metrics", "no")):
        with pytest.raises(dataclasses.FrozenInstanceError, match=field):
            setattr(cfg, field, value)
    assert cfg.name == "catalog"
    with pytest.raises(ValueError, match=r"^name: "):
        dataclasses.replace(cfg, name="<img src=x>")  # a changed copy is checked again
    assert dataclasses.replace(cfg, name="catalog-2").name == "catalog-2"


@pytest.mark.parametrize(
    "build",
    [
        lambda v: CacheConfig(name=v),
        lambda v: BackendInfo(kind=v),
        lambda v: CacheConfig(default_ttl=v),
        lambda v: CacheConfig(backend=v),
        lambda v: CacheConfig(serializer=v),
        lambda v: CacheConfig(redis_url=v),
    ],
    ids=["name", "kind", "default_ttl", "backend", "serializer", "redis_url"],
)
def test_an_error_quotes_at_most_100_characters_of_a_bad_value(build):
    huge = "<" + "x" * 10_000_000
    with pytest.raises((ValueError, TypeError)) as info:
        build(huge)
    message = str(info.value)
    assert len(message) < 300, message[:400]
    assert "x" * 101 not in message

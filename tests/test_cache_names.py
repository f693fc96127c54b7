"""Caches told apart: three caches in one process, each its own series, health and statistics."""

from __future__ import annotations

import pytest

from yokedcache import CacheConfig, YokedCache
from yokedcache.telemetry import semconv as sc

from .redis_server import free_port


async def test_three_caches_in_one_process_report_apart(redis_url, telemetry):
    mp, tp = telemetry.meter_provider, telemetry.tracer_provider
    sessions = YokedCache(CacheConfig(name="sessions", meter_provider=mp, tracer_provider=tp))
    catalog = YokedCache(CacheConfig(name="catalog", redis_url=redis_url, meter_provider=mp, tracer_provider=tp))
    broken = YokedCache(CacheConfig(name="broken", redis_url=f"redis://127.0.0.1:{free_port()}/0",
                                    meter_provider=mp, tracer_provider=tp, retry_attempts=0))  # fmt: skip
    try:
        await sessions.set("a", 1)
        await sessions.get("a")  # hit
        await catalog.get("x")  # miss
        await broken.get("y")  # fails open
        metrics = telemetry.metrics(keep_name=True)
        gets = {(a[sc.CACHE_NAME], a[sc.ATTR_RESULT]): p.value for a, p in metrics[sc.GETS]}
        assert gets[("sessions", "hit")] == 1 and gets[("catalog", "miss")] == 1
        assert ("broken", "hit") not in gets or gets[("broken", "hit")] == 0
        health = {a[sc.CACHE_NAME]: p.value for a, p in metrics[sc.HEALTH]}
        assert health == {"sessions": 1, "catalog": 1, "broken": 0}
        errors = {a[sc.CACHE_NAME] for a, p in metrics[sc.ERRORS]}
        assert errors == {"broken"}
        spans = {dict(s.attributes)[sc.CACHE_NAME] for s in telemetry.spans.get_finished_spans()}
        assert spans == {"catalog", "broken"}  # the memory cache traces only when asked to
        assert [(await c.get_stats()).name for c in (sessions, catalog, broken)] == ["sessions", "catalog", "broken"]
        reports = [await c.detailed_health_check() for c in (sessions, catalog, broken)]
        assert [(r["name"], r["status"]) for r in reports] == [
            ("sessions", "healthy"), ("catalog", "healthy"), ("broken", "unhealthy"),
        ]  # fmt: skip
    finally:
        for cache in (sessions, catalog, broken):
            await cache.close()


async def test_caches_sharing_a_name_share_their_series(telemetry):
    a = YokedCache(CacheConfig(name="shared", meter_provider=telemetry.meter_provider))
    b = YokedCache(CacheConfig(name="shared", meter_provider=telemetry.meter_provider))
    await a.get("k")
    await b.get("k")
    points = [(attrs, p.value) for attrs, p in telemetry.metrics(keep_name=True)[sc.MISSES]]
    assert points == [({sc.CACHE_NAME: "shared"}, 2)]
    await a.close()
    await b.close()


@pytest.mark.parametrize("bad", ["", "has space", "x" * 65, "tenant/42"])
def test_a_name_is_a_short_fixed_label(bad):
    with pytest.raises(ValueError, match="name"):
        CacheConfig(name=bad)
    with pytest.raises(TypeError, match="name"):
        CacheConfig(name=42)  # type: ignore[arg-type]

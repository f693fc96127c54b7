"""PrometheusCollector serves real /metrics over HTTP with the documented names."""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics, PrometheusCollector

from .receivers import exposition_duplicates
from .redis_server import in_ci


def scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        assert resp.status == 200
        return resp.read().decode()


async def traffic(cache: YokedCache) -> None:
    for i in range(20):
        await cache.set(f"k{i}", {"i": i})
    for i in range(25):
        await cache.get(f"k{i}")
    await cache.delete("k1")
    await cache.invalidate_pattern("k2*")


@pytest.fixture
async def served(backend_settings):
    made = []

    async def make(**collector_kw):
        collector = PrometheusCollector(port=0, **collector_kw)
        metrics = CacheMetrics([collector])
        cache = YokedCache(CacheConfig(metrics=metrics, **backend_settings))
        made.append((cache, metrics))
        await traffic(cache)
        await cache.refresh_usage()
        return collector, scrape(collector.url)

    yield make
    for cache, metrics in made:
        await cache.close()
        metrics.shutdown()


async def test_default_namespace_serves_documented_series(served):
    _, text = await served()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("yokedcache_cache_gets", "yokedcache_cache_sets", "yokedcache_cache_deletes",
                 "yokedcache_cache_hits", "yokedcache_cache_misses", "yokedcache_cache_invalidations",
                 "yokedcache_cache_hit_rate", "yokedcache_cache_size_bytes", "yokedcache_cache_keys_count",
                 "yokedcache_cache_operation_duration_seconds"):  # fmt: skip
        assert name in families, name
    gets = {s.labels["result"]: s.value for s in families["yokedcache_cache_gets"].samples}
    assert gets == {"hit": 20.0, "miss": 5.0}
    assert families["yokedcache_cache_hit_rate"].samples[0].value == 0.8
    assert 'le="0.001"' in text and 'le="0.01"' in text
    assert "otel_scope" not in text  # the documented series carry no scope labels


async def test_namespace_subsystem_and_constant_labels(served):
    _, text = await served(namespace="myapp", subsystem="backend", labels={"environment": "production"})
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert "myapp_backend_cache_gets" in families
    assert not any(name.startswith("yokedcache_") for name in families)
    for sample in families["myapp_backend_cache_gets"].samples:
        assert sample.labels["environment"] == "production"


ACCEPTED_FINDINGS = (
    'yokedcache_cache_keys_count non-histogram and non-summary metrics should not have "_count" suffix',
    'db_client_connection_count non-histogram and non-summary metrics should not have "_count" suffix',
)


async def test_promtool_check_metrics_reports_only_the_documented_count_names(served):
    promtool = shutil.which("promtool")
    if promtool is None:
        msg = "promtool not found: apt-get install -y prometheus"
        pytest.fail(msg) if in_ci() else pytest.skip(msg)
    _, text = await served()
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    findings = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    # The metric contract names this gauge yokedcache_cache_keys_count (dashboards and alerts query it),
    # and the database conventions name db.client.connection.count (Redis pools); promtool's naming lint
    # dislikes a "_count" suffix on a gauge. Those are the accepted findings, documented in docs/telemetry.md.
    assert set(findings) <= set(ACCEPTED_FINDINGS) and ACCEPTED_FINDINGS[0] in findings, findings


async def test_promtool_is_clean_on_a_busy_scrape_with_application_metrics(redis_url):
    """Every family has help text, application ones included (they used to have none: one
    "no help text" finding per metric)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        msg = "promtool not found: apt-get install -y prometheus"
        pytest.fail(msg) if in_ci() else pytest.skip(msg)
    collector = PrometheusCollector(port=0)
    metrics = CacheMetrics([collector])
    async with YokedCache(CacheConfig(metrics=metrics, redis_url=redis_url, max_keys=5)) as cache:
        await traffic(cache)
        await cache.refresh_usage()
        await metrics.increment("user.login", tags={"source": "api"})
        await metrics.gauge("queue.depth", 3)
        await metrics.histogram("payload.size", 512)
        await metrics.timing("request.processing", 0.012)
        text = scrape(collector.url)
    metrics.shutdown()
    assert "# HELP user_login_total user.login recorded through CacheMetrics" in text
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    findings = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert set(findings) == set(ACCEPTED_FINDINGS), findings


async def test_application_metrics_reach_prometheus():
    collector = PrometheusCollector(namespace="myapp", port=0)
    metrics = CacheMetrics([collector])
    await metrics.increment("user.login", tags={"source": "api", "method": "oauth"})
    await metrics.increment("user.login", tags={"source": "api", "method": "oauth"})
    text = scrape(collector.url)
    metrics.shutdown()
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "myapp_user_login"]
    assert family.samples[0].value == 2.0
    assert family.samples[0].labels == {"source": "api", "method": "oauth"}


def test_port_in_use_error_names_the_port():
    first = PrometheusCollector(port=0)
    try:
        with pytest.raises(OSError, match=str(first.server.port)):
            PrometheusCollector(port=first.server.port)
    finally:
        first.close()


async def test_two_collectors_and_two_caches_in_one_process():
    a = PrometheusCollector(port=0)
    b = PrometheusCollector(port=0, registry=CollectorRegistry())
    metrics_a, metrics_b = CacheMetrics([a]), CacheMetrics([b])
    c1 = YokedCache(CacheConfig(metrics=metrics_a, key_prefix="one:"))
    c2 = YokedCache(CacheConfig(metrics=metrics_a, key_prefix="two:"))
    c3 = YokedCache(CacheConfig(metrics=metrics_b))
    for c in (c1, c2, c3):
        await c.get("x")
    gets_a = [f for f in text_string_to_metric_families(scrape(a.url)) if f.name == "yokedcache_cache_gets"]
    gets_b = [f for f in text_string_to_metric_families(scrape(b.url)) if f.name == "yokedcache_cache_gets"]
    assert {s.labels["result"]: s.value for s in gets_a[0].samples}["miss"] == 2.0
    assert {s.labels["result"]: s.value for s in gets_b[0].samples}["miss"] == 1.0
    for c in (c1, c2, c3):
        await c.close()
    metrics_a.shutdown()
    metrics_b.shutdown()


def test_server_answers_only_get_and_head_on_its_paths():
    collector = PrometheusCollector(port=0)
    try:
        with urllib.request.urlopen(collector.url + "/healthz", timeout=5) as resp:
            assert resp.read() == b"ok\n"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(collector.url + "/nope", timeout=5)
        assert err.value.code == 404
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(urllib.request.Request(collector.url + "/metrics", data=b"x"), timeout=5)
        assert err.value.code == 405
        head = urllib.request.urlopen(urllib.request.Request(collector.url + "/metrics", method="HEAD"), timeout=5)
        assert head.status == 200 and head.read() == b""
        assert collector.server.addr == "127.0.0.1"
    finally:
        collector.close()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"namespace": "my-app"}, "namespace"), ({"subsystem": "1x"}, "subsystem"),
     ({"labels": {"bad-label": "x"}}, "labels"), ({"labels": {"ok": 1}}, "labels"), ({"port": 70000}, "port"),
     ({"namespace": "myapp\n"}, "namespace"), ({"labels": {"env\n": "x"}}, "labels")],  # "$" admits a final \n
)  # fmt: skip
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises((ValueError, TypeError), match=field):
        PrometheusCollector(**kwargs)


async def test_force_flush_does_not_make_the_next_scrape_repeat_every_family():
    collector = PrometheusCollector(port=0)
    metrics = CacheMetrics([collector])
    cache = YokedCache(CacheConfig(metrics=metrics))
    try:
        await cache.set("k", 1)
        await cache.get("k")
        assert metrics.force_flush() is True  # a pull exporter has nothing to push
        metrics.force_flush()
        text = scrape(collector.url)
        assert exposition_duplicates(text) == []
        assert text.count("# TYPE yokedcache_cache_gets_total counter") == 1
    finally:
        await cache.close()
        metrics.shutdown()


async def test_concurrent_scrapes_each_get_one_whole_exposition():
    """Two Prometheus replicas (or a replica and a curl) scraping at the same moment."""
    import threading

    from prometheus_client import generate_latest

    collector = PrometheusCollector(port=None)
    metrics = CacheMetrics([collector])
    cache = YokedCache(CacheConfig(metrics=metrics))
    try:
        for i in range(50):
            await cache.set(f"k{i}", i)
            await cache.get(f"k{i}")
        texts: list[str] = []

        def scraper() -> None:
            for _ in range(100):
                texts.append(generate_latest(collector.registry).decode())

        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads as often as possible: provoke the interleaving
        try:
            threads = [threading.Thread(target=scraper) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            sys.setswitchinterval(interval)
        assert len(texts) == 800
        for text in texts:
            assert exposition_duplicates(text) == []
            families = {f.name: f for f in text_string_to_metric_families(text)}
            gets = {s.labels["result"]: s.value for s in families["yokedcache_cache_gets"].samples}
            assert gets["hit"] == 50.0
    finally:
        await cache.close()
        metrics.shutdown()


async def test_application_metric_named_like_a_built_in_keeps_both_valid(caplog):
    """docs/monitoring.md's health monitor pushes cache.hit_rate; under namespace="myapp" that name is taken."""
    collector = PrometheusCollector(namespace="myapp", port=0)
    metrics = CacheMetrics([collector])
    cache = YokedCache(CacheConfig(metrics=metrics))
    try:
        await cache.set("k", 1)
        await cache.get("k")
        await cache.get("missing")
        await metrics.gauge("cache.hit_rate", 0.25)
        await metrics.gauge("cache.health", 1.0)
        await metrics.gauge("cache.size_bytes", 123.0)  # the built-in cache.size (unit By) lands here too
        await metrics.gauge("cache.uptime_seconds", 5.0)  # no built-in of that name: keeps it
        metrics.force_flush()
        text = scrape(collector.url)
        scrape(collector.url)
        assert exposition_duplicates(text) == []
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["myapp_cache_hit_rate"].samples[0].value == 0.5  # the cache's own
        assert families["myapp_app_cache_hit_rate"].samples[0].value == 0.25  # the application's
        assert "myapp_app_cache_health" in families and "myapp_cache_health" in families
        assert families["myapp_app_cache_size_bytes"].samples[0].value == 123.0
        assert "myapp_cache_size_bytes" in families and "myapp_cache_uptime_seconds" in families
        warnings = [r for r in caplog.records if "myapp_app_cache_hit_rate" in r.getMessage()]
        assert len(warnings) == 1  # once, not per scrape
    finally:
        await cache.close()
        metrics.shutdown()


async def test_the_process_wide_registry_works_quietly_and_is_left_clean(caplog):
    """registry=prometheus_client.REGISTRY: served beside the process metrics, no collection at
    registration (that registry auto-describes), and unregistered again on shutdown."""
    from prometheus_client import REGISTRY, generate_latest

    for _ in range(2):  # the second round proves shutdown unregistered the first
        collector = PrometheusCollector(registry=REGISTRY, port=None)
        metrics = CacheMetrics([collector])
        cache = YokedCache(CacheConfig(metrics=metrics))
        try:
            await cache.set("k", 1)
            await cache.get("k")
            text = generate_latest(REGISTRY).decode()
            assert exposition_duplicates(text) == []
            assert text.count("# TYPE yokedcache_cache_gets_total counter") == 1
            assert "python_gc_objects_collected_total" in text  # prometheus_client's own collectors
        finally:
            await cache.close()
            metrics.shutdown()
    assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.records

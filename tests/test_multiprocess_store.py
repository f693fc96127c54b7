"""The multiprocess store carries the SDK's points exactly, merges by the documented rules, and
stays bounded however many workers die (real files, real forked processes, real Redis)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import tracemalloc
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from yokedcache import CacheConfig, YokedCache
from yokedcache.exporters.multiprocess import ProcessStore, fold_dead, service_workers
from yokedcache.monitoring import CacheMetrics, PrometheusCollector, mark_process_dead

from .redis_server import missing
from .test_collector_config import poll


def parse(collector: PrometheusCollector) -> dict:
    return {f.name: f for f in text_string_to_metric_families(generate_latest(collector.registry).decode())}


def shape(family) -> tuple:
    """What must not differ between one process and the merged view: type, help, label sets."""
    return family.type, family.documentation, sorted({(s.name, tuple(sorted(s.labels))) for s in family.samples})


async def workload(cache: YokedCache) -> None:
    for i in range(8):
        await cache.set(f"k{i}", i)
    for i in range(10):
        await cache.get(f"k{i}")  # 8 hits, 2 misses
    await cache.delete("k0")
    await cache.refresh_usage()


async def test_the_merged_view_has_the_single_process_names_help_labels_and_counts(tmp_path, redis_url):
    single = PrometheusCollector(port=None, labels={"service": "shop"})
    multi = PrometheusCollector(port=None, labels={"service": "shop"}, multiprocess_dir=tmp_path)
    outputs = []
    for collector in (single, multi):
        metrics = CacheMetrics([collector])
        async with YokedCache(CacheConfig(redis_url=redis_url, metrics=metrics)) as cache:
            await cache.clear()
            await workload(cache)
            outputs.append(parse(collector))
        metrics.shutdown()
    one, merged = outputs
    assert set(one) == set(merged)
    for name, family in one.items():
        assert shape(merged[name]) == shape(family), name
        if family.type == "counter" or name.endswith("hit_rate") or name.endswith("keys_count"):
            assert sorted((s.name, s.labels.get("result"), s.value) for s in merged[name].samples) == sorted(
                (s.name, s.labels.get("result"), s.value) for s in family.samples
            ), name
    hist = [
        s for s in merged["yokedcache_cache_operation_duration_seconds"].samples if s.labels.get("operation") == "get"
    ]
    assert [s.labels["le"] for s in hist if s.name.endswith("_bucket")][-1] == "+Inf"
    assert next(s.value for s in hist if s.name.endswith("_count")) == 10


async def test_three_workers_sum_counters_but_not_the_shared_redis_keys(tmp_path, redis_url):
    """Three collectors in one directory stand for three workers (each has its own files)."""
    collectors = [PrometheusCollector(port=None, multiprocess_dir=tmp_path) for _ in range(3)]
    metrics = [CacheMetrics([c]) for c in collectors]
    caches = [YokedCache(CacheConfig(redis_url=redis_url, metrics=m)) for m in metrics]
    await caches[0].clear()
    for cache in caches:
        await workload(cache)  # the same 8 keys in the one Redis
    pools = 0.0
    for c in collectors:
        own = {f.name: f for f in c.reader.families()}
        pools += sum(s.value for s in own["yokedcache_cache_pool_max"].samples)
        c.store.write()  # what each worker's thread does every interval
    merged = parse(collectors[0])
    gets = {s.labels["result"]: s.value for s in merged["yokedcache_cache_gets"].samples}
    assert gets == {"hit": 24, "miss": 6}  # each worker: 8 hits, 2 misses
    (keys,) = merged["yokedcache_cache_keys_count"].samples
    assert keys.value == 7  # the one Redis: not 21
    (rate,) = merged["yokedcache_cache_hit_rate"].samples
    assert rate.value == pytest.approx(24 / 30)  # from the summed hits and misses
    (pool_max,) = merged["yokedcache_cache_pool_max"].samples
    assert pool_max.value == pools  # connections: summed over the workers
    (health,) = merged["yokedcache_cache_health"].samples
    assert health.value == 1
    for cache, m in zip(caches, metrics, strict=True):
        await cache.close()
        m.shutdown()


async def test_workers_with_different_names_still_give_at_most_65_per_family(tmp_path):
    """Each worker caps its own names at 64; two workers that met 70 different names each would
    report 140 together. The merged view caps the service: 64 names plus ``_other``, with every
    count kept (folded into ``_other``, not lost)."""
    collectors = [PrometheusCollector(port=None, multiprocess_dir=tmp_path) for _ in range(2)]
    metrics = [CacheMetrics([c]) for c in collectors]
    caches = [YokedCache(CacheConfig(metrics=m, name=f"w{w}-n{i:02d}")) for w, m in enumerate(metrics)
              for i in range(70)]  # fmt: skip
    for cache in caches:
        await cache.set("k", 1)
        await cache.get("k")
    for c in collectors:
        c.store.write()
    merged = parse(collectors[0])
    for name in ("yokedcache_cache_gets", "yokedcache_cache_operation_duration_seconds", "yokedcache_cache_hit_rate"):
        names = {s.labels["cache_name"] for s in merged[name].samples}
        assert len(names) == 65 and "_other" in names, (name, len(names))
    assert sum(s.value for s in merged["yokedcache_cache_gets"].samples) == 140  # every get, once
    counts = [s for s in merged["yokedcache_cache_operation_duration_seconds"].samples if s.name.endswith("_count")]
    assert sum(s.value for s in counts) == 280  # 140 sets and 140 gets
    for cache in caches:
        await cache.close()
    for m in metrics:
        m.shutdown()


async def test_memory_caches_are_per_worker_so_their_keys_add_up(tmp_path):
    collectors = [PrometheusCollector(port=None, multiprocess_dir=tmp_path) for _ in range(2)]
    metrics = [CacheMetrics([c]) for c in collectors]
    caches = [YokedCache(CacheConfig(metrics=m)) for m in metrics]
    for cache in caches:
        await workload(cache)
    collectors[1].store.write()
    (keys,) = parse(collectors[0])["yokedcache_cache_keys_count"].samples
    assert keys.value == 14  # two processes' own dictionaries, 7 keys each
    for cache, m in zip(caches, metrics, strict=True):
        await cache.close()
        m.shutdown()


async def test_a_hundred_dead_workers_leave_two_archives_and_exact_sums(tmp_path):
    """Forked children write their store and die; gunicorn's hook folds half of them at once,
    a scrape folds the rest once they are silent. The directory and the sums stay exact."""
    collector = PrometheusCollector(port=None, multiprocess_dir=tmp_path, multiprocess_interval=0.05)

    def foreign() -> list[str]:
        """The directory without this process's own files and the lock."""
        own = collector.store.token
        return sorted(p.name for p in Path(tmp_path).iterdir() if own not in p.name and p.name != ".yokedcache.lock")

    metrics = CacheMetrics([collector])
    async with YokedCache(CacheConfig(metrics=metrics)) as cache:
        await workload(cache)
        families = collector.reader.families()  # what each child writes as its own
        sizes, traced = [], []
        tracemalloc.start()
        for n in range(100):
            pid = os.fork()
            if pid == 0:  # the child: write as a worker would, then die without cleanup
                try:
                    ProcessStore(str(tmp_path), "yokedcache", lambda: families, lambda: False, 0.05).write()
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)  # noqa: ASYNC222 -- the child only writes a few files and exits
            if n % 2:
                mark_process_dead(pid, tmp_path)  # what child_exit does
            if n % 10 == 9:  # scrapes fold the silent, vanished ones
                poll(
                    lambda: parse(collector) and foreign() == ["counter_archive.db", "histogram_archive.db"],
                    10,
                    "folded",
                )
                sizes.append(sum((tmp_path / name).stat().st_size for name in foreign()))
                gc.collect()
                traced.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.stop()
        await cache.get("k1")
    assert fold_dead(str(tmp_path)) == 0  # nothing left to fold
    merged = parse(collector)
    gets = {s.labels["result"]: s.value for s in merged["yokedcache_cache_gets"].samples}
    assert gets == {"hit": 8 * 101 + 1, "miss": 2 * 101}
    (count,) = [s for s in merged["yokedcache_cache_operation_duration_seconds"].samples
                if s.name.endswith("_count") and s.labels["operation"] == "get"]  # fmt: skip
    assert count.value == 10 * 101 + 1
    assert foreign() == ["counter_archive.db", "histogram_archive.db"]
    assert max(sizes) == min(sizes), f"the directory grew with restarts: {sizes}"
    # memory: what the scraping process holds after 20 and after 100 dead workers (no per-worker state)
    print(f"store {sizes[-1]} bytes after every 10 dead workers; traced memory {[t // 1024 for t in traced]} KiB")
    assert traced[-1] - traced[1] < 256 * 1024, f"memory grew with restarts: {traced}"
    metrics.shutdown()


def test_arguments_are_checked(tmp_path, monkeypatch):
    with pytest.raises(TypeError, match="multiprocess_dir"):
        PrometheusCollector(port=None, multiprocess_dir=3)
    with pytest.raises(ValueError, match="multiprocess_interval"):
        PrometheusCollector(port=None, multiprocess_dir=tmp_path, multiprocess_interval=0)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="multiprocess_dir"):
        PrometheusCollector(port=None, multiprocess_dir=tmp_path / "file")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(ValueError, match="PROMETHEUS_MULTIPROC_DIR"):
        mark_process_dead(12345)
    with pytest.raises(TypeError, match="pid"):
        mark_process_dead("12", tmp_path)


async def test_a_worker_that_stopped_writing_shows_as_not_reporting_until_folded(tmp_path):
    collector = PrometheusCollector(port=None, multiprocess_dir=tmp_path, multiprocess_interval=0.05)
    metrics = CacheMetrics([collector])
    families = collector.reader.families()
    pid = os.fork()
    if pid == 0:
        try:
            ProcessStore(str(tmp_path), "yokedcache", lambda: families, lambda: False, 0.05).write()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)  # noqa: ASYNC222 -- the child only writes a few files and exits
    row = lambda: next(w for w in service_workers(str(tmp_path))["workers"] if w["pid"] == pid)  # noqa: E731
    poll(lambda: row()["reporting"] is False, 10, "the silent worker shown as not reporting")
    summary = service_workers(str(tmp_path))
    assert summary["count"] == 2 and summary["reporting"] == 1
    parse(collector)  # a scrape folds it: gone from the rows, its counts kept in the archive
    assert [w["pid"] for w in service_workers(str(tmp_path))["workers"]] == [os.getpid()]
    metrics.shutdown()


def test_make_asgi_app_and_make_wsgi_app_take_a_collector_or_its_metrics():
    from yokedcache.monitoring import make_asgi_app, make_wsgi_app

    collector = PrometheusCollector(port=None)
    metrics = CacheMetrics([collector])
    assert make_asgi_app(metrics).table is collector.routes
    assert make_wsgi_app(collector).table is collector.routes
    assert make_asgi_app().table is collector.routes  # the last one bound in this process
    with pytest.raises(TypeError, match="collector"):
        make_wsgi_app(object())
    metrics.shutdown()


def test_make_wsgi_app_mounted_beside_a_django_application(tmp_path):
    """Django's own WSGI handler and the telemetry routes on one real WSGI server (wsgiref),
    the routes relative to their mount point; multiprocess mode, so the answer is the service's."""
    import threading
    import urllib.error
    import urllib.request
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    try:
        import django
    except ImportError:
        missing("django not installed: pip install -e '.[test]'")
    from django.conf import settings
    from django.http import HttpResponse
    from django.urls import path
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from yokedcache.monitoring import make_wsgi_app

    if not settings.configured:
        settings.configure(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], SECRET_KEY="test", DEBUG=False)
        django.setup()
    global urlpatterns
    urlpatterns = [path("hello", lambda request: HttpResponse(b"hello"))]
    from django.core.wsgi import get_wsgi_application

    collector = PrometheusCollector(port=None, multiprocess_dir=tmp_path)
    metrics = CacheMetrics([collector])
    application = DispatcherMiddleware(get_wsgi_application(), {"/observability": make_wsgi_app(metrics)})

    async def use() -> YokedCache:
        cache = YokedCache(CacheConfig(backend="memory", metrics=metrics))
        await cache.get("absent")
        return cache

    cache = asyncio.run(use())

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = make_server("127.0.0.1", 0, application, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert urllib.request.urlopen(f"{base}/hello", timeout=5).read() == b"hello"
        body = urllib.request.urlopen(f"{base}/observability/metrics", timeout=5).read().decode()
        assert 'yokedcache_cache_gets_total{cache_name="memory",result="miss"} 1.0' in body
        status = json.loads(urllib.request.urlopen(f"{base}/observability/status.json", timeout=5).read())
        assert status["workers"]["count"] == 1
        assert urllib.request.urlopen(f"{base}/observability/healthz", timeout=5).read() == b"ok\n"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(f"{base}/observability/metrics", method="POST"), timeout=5)
        assert refused.value.code == 405
    finally:
        server.shutdown()
        server.server_close()
        del cache
        metrics.shutdown()

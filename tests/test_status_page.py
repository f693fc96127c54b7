"""The status page's server side: ``/`` and ``/status.json`` over real HTTP, beside ``/metrics``.

(``test_status_page_browser.py`` loads the page in a real Chromium.)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
import signal
import time
import tracemalloc
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import AlertManager, CacheMetrics, PrometheusCollector
from yokedcache.server.status import CHART_SECONDS, SCHEMA_VERSION, StatusBoard
from yokedcache.window import CounterWindow

from .redis_server import free_port

README = Path(__file__).resolve().parent.parent / "docs" / "operations.md"  # the status page's reference


def _get(url: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def _status(collector: PrometheusCollector, query: str = "") -> dict[str, Any]:
    status, headers, body = await asyncio.to_thread(_get, f"{collector.url}/status.json{query}")
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    return json.loads(body)


@pytest.fixture
def served():
    collector = PrometheusCollector(port=0)
    metrics = CacheMetrics([collector])
    yield collector, metrics
    metrics.shutdown()


async def test_status_json_groups_caches_by_name_and_counts_what_they_counted(served):
    collector, metrics = served
    async with (
        YokedCache(CacheConfig(metrics=metrics, name="catalog")) as a,
        YokedCache(CacheConfig(metrics=metrics, name="catalog")) as b,
        YokedCache(CacheConfig(metrics=metrics, name="sessions")) as c,
    ):
        for i in range(300):
            await a.set(f"p{i}", i)
            await a.get(f"p{i % 400}")
        for i in range(100):
            await b.get(f"q{i}")
        await c.set("s", 1)
        await c.delete("s")
        doc = await _status(collector)
        assert doc["version"] == SCHEMA_VERSION == 1 and doc["status"] == "healthy"
        assert "charts" not in doc["caches"][0]  # only when asked for
        by_name = {entry["name"]: entry for entry in doc["caches"]}
        assert sorted(by_name) == ["catalog", "sessions"]
        catalog, sessions = by_name["catalog"], by_name["sessions"]
        assert catalog["instances"] == 2 and catalog["backend"] == "memory"
        # summed over the two caches of one name, as the exported series are
        assert catalog["totals"]["hits"] == 300 and catalog["totals"]["misses"] == 100
        assert catalog["totals"]["operations"] == 700 and catalog["window"]["operations"] == 700
        assert catalog["window"]["hit_rate"] == pytest.approx(0.75)
        usage = {"keys": 300, "bytes": a.usage_snapshot().bytes, "estimated": False, "method": "exact",
                 "keys_error": 0, "bytes_error": 0, "age_seconds": None}  # fmt: skip
        assert catalog["usage"] == usage
        assert {row["operation"] for row in catalog["latency"]} == {"get", "set"}
        for row in catalog["latency"]:
            assert 0 < row["p50_seconds"] <= row["p95_seconds"] <= row["p99_seconds"] < 1
        assert catalog["latency"][0]["count"] == 400  # gets, in operation order
        assert catalog["health"] == {"status": "healthy", "reasons": []}
        assert catalog["pool"] is None and catalog["breaker"] is None  # the memory backend has neither
        assert sessions["totals"]["deletes"] == 1 and sessions["window"]["hit_rate"] is None  # no read yet
        assert sessions["hit_rate_since_start"] is None


async def test_status_json_of_redis_caches_reports_pool_breaker_estimates_and_errors(served, redis_url):
    collector, metrics = served
    dead = f"redis://127.0.0.1:{free_port()}/0"
    good = YokedCache(CacheConfig(metrics=metrics, redis_url=redis_url, name="good"))
    gone = YokedCache(CacheConfig(metrics=metrics, redis_url=dead, name="gone", circuit_failure_threshold=3,
                                  retry_attempts=0))  # fmt: skip
    async with good, gone:
        for i in range(50):
            await good.set(f"k{i}", "v" * 100)
        await good.refresh_usage()
        assert await gone.get("k") is None  # fail-open
        (failing,) = [c for c in (await _status(collector))["caches"] if c["name"] == "gone"]
        assert failing["health"]["reasons"] == ["backend failing: connection refused (1 in a row)"]
        assert failing["health"]["status"] == "unhealthy"
        assert failing["breaker"]["state"] == "closed"  # not yet: 1 of 3
        for _ in range(4):
            assert await gone.get("k") is None
        doc = await _status(collector)
        by_name = {entry["name"]: entry for entry in doc["caches"]}
        assert doc["status"] == "unhealthy"  # the worst of them
        ok, bad = by_name["good"], by_name["gone"]
        assert ok["health"]["status"] == "healthy" and ok["breaker"] == {"state": "closed", "opens": 0}
        assert ok["pool"]["max"] == good.config.max_connections and ok["pool"]["in_use"] == 0
        assert ok["usage"]["keys"] == 50 and ok["usage"]["method"] == "exact"  # a tiny database is scanned
        assert bad["breaker"]["state"] == "open" and bad["breaker"]["opens"] == 1
        assert bad["health"] == {"status": "unhealthy",
                                 "reasons": ["circuit breaker open (last error: connection refused)"]}  # fmt: skip
        (row,) = [r for r in bad["errors"] if r["error_type"].endswith("ConnectionError")]
        assert row["operation"] == "get" and row["count"] == 3  # then the breaker failed fast
        assert sum(r["count"] for r in bad["errors"]) == bad["totals"]["errors"] == 5
        assert bad["window"]["errors"] == 5 and bad["window"]["error_ratio"] == 1.0


def _paths(value: Any, prefix: str = "") -> set[str]:
    """Every field of a JSON document as a dotted path; list items as ``[]``."""
    out: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            out.add(path)
            out |= _paths(item, path)
    elif isinstance(value, list) and value and not isinstance(value[0], (int, float)):
        for item in value:
            out |= _paths(item, f"{prefix}[]")
    return out


def _documented_paths() -> set[str]:
    """The status page reference's /status.json table, plus the rows of the pages of cache-aside
    and the near cache, which document their own fields."""
    found = set()
    for page in (README, README.parent / "cache-aside.md", README.parent / "near-cache.md"):
        text = page.read_text()
        section = text[text.index("### `/status.json`") :]
        section = section.split("\n## ", 1)[0]  # to the next section or the page's end
        found |= set(re.findall(r"^\| `([a-z0-9_.\[\]]+)`", section, flags=re.M))
    return found


async def test_every_field_of_status_json_is_documented_in_the_readme_and_no_other(served, redis_url):
    collector, metrics = served
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with (
        YokedCache(CacheConfig(metrics=metrics, redis_url=redis_url, name="good", near_cache=True)) as good,
        YokedCache(CacheConfig(metrics=metrics, redis_url=dead, name="gone", retry_attempts=0)) as gone,
    ):
        manager = AlertManager(good, interval=0.05)
        manager.add_alert("busy", "total_operations", 0, ">", description="anything at all")
        manager.start()
        try:
            await good.set("k", 1)
            await good.get("k")
            await good.refresh_usage()
            await gone.get("k")
            deadline = time.monotonic() + 10
            while not manager.active_alerts():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            documented = _documented_paths()
            deadline = time.monotonic() + 10
            while True:  # chart fields appear with the readings: take one now, as the server's thread does
                collector.status._next_tick = 0.0
                collector.status.tick()
                doc = await _status(collector, "?charts=300")
                if _paths(doc) == documented or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
        finally:
            manager.stop(1)
    live = _paths(doc)
    assert live - documented == set(), "fields missing from docs/operations.md's /status.json table"
    assert documented - live == set(), "docs/operations.md documents fields /status.json does not have"
    (good_entry,) = [c for c in doc["caches"] if c["name"] == "good"]
    assert [a["alert"] for a in good_entry["alerts"]] == ["busy"]


async def test_chart_points_are_true_rates_from_the_counter_window():
    """Driven by a clock the test moves: 200 ops per simulated second, 75 % of the gets hit."""
    clock = [1000.0]
    now = lambda: clock[0]  # noqa: E731
    async with YokedCache(CacheConfig(enable_metrics=False, name="driven")) as cache:
        cache.rates = CounterWindow(cache._totals, clock=now)
        board = StatusBoard(lambda: [cache.telemetry], clock=now)
        await cache.set("hit", 1)
        for _ in range(20):
            for i in range(100):
                await cache.get("hit" if i % 4 else "miss")
            for _ in range(99):
                await cache.exists("hit")
            await cache.set("hit", 1)
            clock[0] += 1.0
            board.tick()
        doc = board.snapshot(chart_seconds=300)
    charts = doc["caches"][0]["charts"]
    rates = [v for _, v in charts["operations_per_second"]]
    assert len(rates) == 20 and rates[1:] == [200.0] * 19  # the first interval holds the first set
    assert [v for _, v in charts["hit_rate"]] == [0.75] * 20
    times = [t for t, _ in charts["operations_per_second"]]
    assert all(b - a == pytest.approx(1.0) for a, b in itertools.pairwise(times))
    assert len(charts["p99_seconds"]) == 20 and all(v is not None for _, v in charts["p99_seconds"][1:])
    # charts=10: only the last ten seconds
    assert len(board.snapshot(chart_seconds=10)["caches"][0]["charts"]["operations_per_second"]) == 10


async def test_chart_memory_is_bounded_whatever_the_traffic_and_the_uptime():
    clock = [0.0]
    now = lambda: clock[0]  # noqa: E731
    async with YokedCache(CacheConfig(enable_metrics=False)) as cache:
        cache.rates = CounterWindow(cache._totals, clock=now)
        board = StatusBoard(lambda: [cache.telemetry], clock=now)

        async def run(seconds: int, ops_per_second: int) -> int:
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(seconds):
                for _ in range(ops_per_second):
                    await cache.exists("k")
                clock[0] += 1.0
                board.tick()
            board.snapshot(chart_seconds=300)
            grown = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
            return grown

        await run(610, 4)  # past the horizon (600 s): every store is full
        quiet = await run(120, 5)
        busy = await run(120, 500)
        busier = await run(60, 2500)
        readings = cache.rates.history(10_000)
        assert len(readings) <= cache.rates.max_readings == 602
        assert len(board._p99[cache.name]) <= CHART_SECONDS + 1
        # 100x the traffic: the charts take the same memory (within what the ints' sizes can
        # differ); the latency tables' chunks hold at most the cache's recent durations (2,048
        # floats and their pointers) however busy it is: 500x the traffic, the same bound
        ring = cache.telemetry.recent.maxlen * (8 + 24)
        assert abs(busy - quiet) < 16 * 1024 + ring, (quiet, busy)
        assert abs(busier - quiet) < 16 * 1024 + ring, (quiet, busier)


def test_status_json_refuses_a_query_it_does_not_know(served):
    collector, _ = served
    for query, words in [("?charts=abc", "charts:"), ("?charts=301", "charts:"), ("?charts=nan", "charts:"),
                         ("?charts=-1", "charts:"), ("?limit=5", "unknown query parameter 'limit'")]:  # fmt: skip
        status, _, body = _get(f"{collector.url}/status.json{query}")
        assert status == 400, query
        assert words in json.loads(body)["error"]
    assert _get(f"{collector.url}/status.json?charts=300")[0] == 200


def test_the_page_is_self_contained_read_only_and_under_a_strict_policy(served):
    collector, _ = served
    status, headers, body = _get(collector.url + "/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    html = body.decode()
    policy = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
    assert policy["base-uri"] == policy["form-action"] == policy["frame-ancestors"] == "'none'"
    assert policy["trusted-types"] == "'none'" and policy["require-trusted-types-for"] == "'script'"
    # the inline script and style, and nothing else, are allowed: by hash, never 'unsafe-inline'
    for tag in ("script", "style"):
        (block,) = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)
        digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
        assert policy[f"{tag}-src"] == f"'sha256-{digest}'"
    assert "unsafe" not in headers["Content-Security-Policy"]
    # no asset from anywhere: no src attribute, links only to the server's own relative paths
    assert not re.search(r"\ssrc=", html)
    assert re.findall(r'href="([^"]*)"', html) == ["data:,", "status.json", "metrics", "readyz"]
    # the one absolute URL is the SVG namespace: a name, never fetched
    assert set(re.findall(r"[a-z]+://[^\s\"']*", html)) == {"http://www.w3.org/2000/svg"}
    # read-only: nothing to submit, nothing but GET and HEAD accepted
    assert not re.search(r"<(form|input|button|textarea|select)\b", html)
    for path in ("/", "/status.json"):
        request = urllib.request.Request(collector.url + path, data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 405
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Cache-Control"] == "no-store"
    assert _get(collector.url + "/status.json")[1]["Content-Security-Policy"].startswith("default-src 'none'")


def test_status_page_can_be_turned_off():
    collector = PrometheusCollector(port=0, status_page=False)
    metrics = CacheMetrics([collector])
    try:
        assert _get(collector.url + "/")[0] == 404 and _get(collector.url + "/status.json")[0] == 404
        assert _get(collector.url + "/metrics")[0] == 200
    finally:
        metrics.shutdown()


async def test_keys_values_and_tags_never_appear(served, redis_url):
    collector, metrics = served
    marks = ("KEYMARK", "VALUEMARK", "TAGMARK")
    async with YokedCache(CacheConfig(metrics=metrics, redis_url=redis_url)) as cache:
        for i in range(200):
            await cache.set(f"KEYMARK-{i}", {"secret": f"VALUEMARK-{i}"}, tags=[f"TAGMARK-{i % 7}"])
            await cache.get(f"KEYMARK-{i * 3}")
        await cache.invalidate_tags(["TAGMARK-1"])
        await cache.invalidate_pattern("KEYMARK-1*")
        with pytest.raises(TypeError):
            await cache.set("KEYMARK-bad", object())  # a failure naming nothing of ours on the page
        await asyncio.sleep(1.2)  # a chart reading or two
        pages = [await asyncio.to_thread(_get, collector.url + path)
                 for path in ("/", "/status.json", "/status.json?charts=300")]  # fmt: skip
    for _, _, body in pages:
        text = body.decode()
        assert not any(m in text for m in marks), text[:500]


async def test_status_json_does_no_io_so_a_frozen_redis_does_not_hold_it(served, redis_server, redis_url):
    """With Redis stopped (SIGSTOP: it accepts and never answers), /status.json still answers
    at once; and with Redis well, serving it sends Redis nothing."""
    import redis

    collector, metrics = served
    config = CacheConfig(metrics=metrics, redis_url=redis_url, health_check_timeout=5, stats_refresh_interval=3600)
    async with YokedCache(config) as cache:
        await cache.set("k", 1)
        await cache.get("k")
        deadline = time.monotonic() + 10
        while cache._usage is None:  # the background refresh's first (and, here, only) round
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        probe = redis.Redis.from_url(redis_url)
        before = probe.info("commandstats")
        for _ in range(20):
            await _status(collector, "?charts=300")
        after = probe.info("commandstats")
        probe.close()
        # the probe's own INFO is the only command between the two readings
        changed = {k: (before.get(k, {}).get("calls", 0), v["calls"]) for k, v in after.items()
                   if before.get(k, {}).get("calls") != v["calls"]}  # fmt: skip
        assert changed == {"cmdstat_info": (before["cmdstat_info"]["calls"], before["cmdstat_info"]["calls"] + 1)}
        redis_server.proc.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            status, _, body = await asyncio.to_thread(_get, f"{collector.url}/status.json", 3.0)
            took = time.monotonic() - started
        finally:
            redis_server.proc.send_signal(signal.SIGCONT)
        # a ping would have waited health_check_timeout (5 s); the 3 s timeout would have failed it
        assert status == 200 and json.loads(body)["caches"][0]["health"]["status"] == "healthy"
        assert took < 3.0


async def test_a_failing_tick_or_snapshot_never_stops_the_server(served, caplog):
    collector, metrics = served
    board = collector.status

    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    async with YokedCache(CacheConfig(metrics=metrics)) as cache:
        await cache.get("k")
        original = board._groups
        board._groups = broken
        try:
            await asyncio.sleep(1.2)  # the tick raised on the server's thread
            status, _, body = await asyncio.to_thread(_get, collector.url + "/status.json")
            assert status == 500 and b"internal error" in body
        finally:
            board._groups = original
        assert (await _status(collector))["caches"][0]["totals"]["misses"] == 1
    assert _get(collector.url + "/healthz")[0] == 200
    assert any("periodic task" in r.getMessage() for r in caplog.records)


async def test_status_json_gives_per_operation_rates_evictions_memory_against_its_bound_and_rules(served):
    """What the page draws besides the totals: calls per second by operation, evictions, bytes held
    against ``max_memory_bytes``, every alert rule (firing or not) and the error-rate chart."""
    collector, metrics = served
    config = CacheConfig(metrics=metrics, name="bounded", max_memory_bytes=64 * 1024)
    async with YokedCache(config) as cache:
        manager = AlertManager(cache, interval=0.05)
        manager.add_alert("never", "hit_rate", -1, "<", description="cannot fire")
        manager.add_alert("filling", "memory_usage_ratio", 0.0, ">", severity="info")
        manager.start()
        try:
            for i in range(2000):  # ~1 kB values into 64 KiB: most are evicted
                await cache.set(f"k{i}", "x" * 1000)
            for i in range(300):
                await cache.get(f"k{i}")
            deadline = time.monotonic() + 10
            while not manager.active_alerts():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            deadline = time.monotonic() + 10
            while True:  # chart points are differences of readings a second apart: wait for one
                collector.status._next_tick = 0.0
                collector.status.tick()  # a reading now, as the server's thread takes once a second
                doc = await _status(collector, "?charts=300")
                if doc["caches"][0]["charts"]["error_ratio"]:
                    break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
        finally:
            manager.stop(1)
    (entry,) = doc["caches"]
    assert entry["max_memory_bytes"] == 64 * 1024
    assert 0 < entry["usage"]["bytes"] <= entry["max_memory_bytes"]
    evicted = cache.backend.evictions
    assert evicted > 1000 and entry["totals"]["evictions"] == evicted
    assert entry["window"]["evictions_per_second"] > 0
    rates = {r["operation"]: r["operations_per_second"] for r in entry["window"]["rates"]}
    assert set(rates) == {"set", "get"} and rates["set"] > rates["get"] > 0
    assert sum(rates.values()) == pytest.approx(entry["window"]["operations_per_second"], rel=0.05)
    rules = {r["alert"]: r for r in entry["alert_rules"]}
    assert rules["never"]["state"] == "inactive" and rules["filling"]["state"] == "firing"
    assert rules["filling"]["metric"] == "memory_usage_ratio" and rules["filling"]["severity"] == "info"
    assert [a["alert"] for a in entry["alerts"]] == ["filling"]
    assert entry["charts"]["error_ratio"] and all(v in (0.0, None) for _, v in entry["charts"]["error_ratio"])


async def test_redis_has_no_memory_bound_or_eviction_count_on_the_page(served, redis_url):
    collector, metrics = served
    async with YokedCache(CacheConfig(metrics=metrics, redis_url=redis_url)) as cache:
        await cache.set("k", 1)
        doc = await _status(collector)
    (entry,) = doc["caches"]
    assert entry["max_memory_bytes"] is None and entry["totals"]["evictions"] is None
    assert entry["window"]["evictions_per_second"] is None and entry["alert_rules"] == []

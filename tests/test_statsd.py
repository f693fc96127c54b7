"""The StatsD bridge against a real UDP socket."""

from __future__ import annotations

import importlib.metadata
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yokedcache import CacheConfig, YokedCache
from yokedcache.exporters.statsd import (
    StatsDMetricExporter,
    allocate_lines,
    exact_parts,
    format_number,
    format_rate,
    sanitize_name,
)
from yokedcache.monitoring import CacheMetrics, StatsDCollector

from .receivers import StatsDListener

LINE = re.compile(
    r"^[A-Za-z0-9_.\-]+:-?[0-9.]+\|(c|g|h|ms)(\|@[0-9.]+)?(\|#[A-Za-z0-9_.\-/]+:[A-Za-z0-9_.\-/]+(,[A-Za-z0-9_.\-/]+:[A-Za-z0-9_.\-/]+)*)?$"
)


@pytest.fixture
def listener():
    listener = StatsDListener()
    yield listener
    listener.close()


async def test_counter_totals_equal_operations_with_few_datagrams(listener, make_cache):
    collector = StatsDCollector("127.0.0.1", listener.port, prefix="myapp.cache", use_tags=True, flush_interval=60)
    metrics = CacheMetrics([collector])
    cache = make_cache(metrics=metrics, meter_provider=None, tracer_provider=None)
    n = 2000
    for i in range(n):
        await cache.set(f"k{i % 50}", i)
        await cache.get(f"k{i % 100}")  # keys 50..99 never set: half the gets miss
    metrics.force_flush()
    listener.wait_for(lambda: listener.counter_total("myapp.cache.sets") == n)
    assert listener.counter_total("myapp.cache.hits") + listener.counter_total("myapp.cache.misses") == n
    hit_lines = [x for x in listener.lines() if x.startswith("myapp.cache.gets:") and x.endswith(",result:hit")]
    assert sum(float(x.split(":")[1].split("|")[0]) for x in hit_lines) == n / 2
    # one flush: a handful of datagrams, independent of the 4,000 operations (on Redis, twice the
    # timers: db.client.operation.duration rides along with cache.operation_duration)
    assert len(listener.datagrams) < (40 if cache.backend.remote else 16)
    assert all(len(d.encode()) <= 1432 for d in listener.datagrams)
    assert all(LINE.match(line) for line in listener.lines()), listener.lines()
    metrics.shutdown()


async def test_histogram_lines_reconstruct_count_and_sum(listener):
    collector = StatsDCollector("127.0.0.1", listener.port, prefix="myapp.cache", use_tags=True, flush_interval=60)
    metrics = CacheMetrics([collector])
    cache = YokedCache(CacheConfig(metrics=metrics))
    for i in range(300):
        await cache.get(f"k{i}")
    metrics.force_flush()
    from bisect import bisect_left

    from yokedcache.telemetry.semconv import DURATION_BUCKETS

    def bucket_width(value: float) -> float:
        i = bisect_left(DURATION_BUCKETS, value)
        lower = DURATION_BUCKETS[i - 1] if i > 0 else 0.0
        upper = DURATION_BUCKETS[i] if i < len(DURATION_BUCKETS) else value
        return upper - lower

    def decoded() -> tuple[int, float, float]:
        count = 0
        total = allowed_error = 0.0
        for line in listener.lines():
            if line.startswith("myapp.cache.operation_duration:") and line.endswith(",operation:get"):
                fields = line.split(":", 1)[1].split("|")
                assert fields[1] == "ms"  # a timer, in milliseconds
                value = float(fields[0]) / 1000
                rate = next((float(f[1:]) for f in fields if f.startswith("@")), 1.0)
                samples = int(1 / rate)  # the Datadog agent's and the Collector receiver's arithmetic
                count += samples
                total += value * samples
                allowed_error += bucket_width(value) * samples
        return count, total, allowed_error

    listener.wait_for(lambda: decoded()[0] >= 300)
    count, total, allowed_error = decoded()
    assert count == 300
    recorded = cache.telemetry.counters.duration_sum["get"]
    assert abs(total - recorded) <= allowed_error  # every sample is off by at most its bucket's width
    await cache.close()
    metrics.shutdown()


async def test_without_tags_attributes_become_name_segments(listener):
    collector = StatsDCollector("127.0.0.1", listener.port, prefix="myapp.cache", flush_interval=60)
    metrics = CacheMetrics([collector])
    cache = YokedCache(CacheConfig(metrics=metrics))
    await cache.set("k", 1)
    await cache.get("k")
    await metrics.increment("user.login", tags={"source": "a|b:c#d,e\nf"})
    metrics.force_flush()
    listener.wait_for(lambda: any(x.startswith("myapp.cache.gets.hit:") for x in listener.lines()))
    lines = listener.lines()
    assert "myapp.cache.gets.hit:1|c" in lines
    assert "myapp.cache.hit_rate:1|g" in lines
    assert "myapp.cache.user.login.a_b_c_d_e_f:1|c" in lines
    assert not any("|#" in x for x in lines)
    assert not any("myapp.cache.cache" in x for x in lines)  # prefix applied once
    await cache.close()
    metrics.shutdown()


async def test_unresolvable_host_never_raises_and_is_counted(caplog):
    collector = StatsDCollector("no-such-host.invalid", 8125, flush_interval=60)
    metrics = CacheMetrics([collector])
    cache = YokedCache(CacheConfig(metrics=metrics))
    await cache.set("k", 1)
    assert await cache.get("k") == 1
    metrics.force_flush()
    metrics.force_flush()
    assert collector.send_errors == 2
    assert sum("unreachable" in r.getMessage() for r in caplog.records) == 1  # logged once per interval
    await cache.close()
    metrics.shutdown()


def test_numbers_have_no_float_noise_or_exponents():
    assert format_number(0.011000000000000001) == "0.011"
    assert format_number(9.588e-05) == "0.00009588"
    assert format_number(3.0) == "3"
    assert format_number(1500) == "1500"


def test_names_are_sanitised():
    assert sanitize_name("a b:c|d@e#f,g\nh") == "a_b_c_d_e_f_g_h"


def test_entry_point_builds_exporter_from_environment(monkeypatch, listener):
    (ep,) = [e for e in importlib.metadata.entry_points(group="opentelemetry_metrics_exporter") if e.name == "statsd"]
    monkeypatch.setenv("YOKEDCACHE_STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("YOKEDCACHE_STATSD_PORT", str(listener.port))
    monkeypatch.setenv("YOKEDCACHE_STATSD_PREFIX", "svc")
    monkeypatch.setenv("YOKEDCACHE_STATSD_USE_TAGS", "true")
    exporter = ep.load()()
    assert isinstance(exporter, StatsDMetricExporter)
    assert (exporter.sink.host, exporter.sink.port, exporter.sink.prefix, exporter.sink.use_tags) == (
        "127.0.0.1", listener.port, "svc", True,
    )  # fmt: skip
    monkeypatch.setenv("YOKEDCACHE_STATSD_PORT", "eighty")
    with pytest.raises(ValueError, match="YOKEDCACHE_STATSD_PORT"):
        ep.load()()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"port": "8125"}, "port"), ({"sample_rate": 2}, "sample_rate"), ({"timeout": 0}, "timeout"),
     ({"use_tags": "yes"}, "use_tags"), ({"prefix": 5}, "prefix"), ({"flush_interval": -1}, "flush_interval"),
     ({"flush_interval": float("nan")}, "flush_interval"), ({"flush_interval": float("inf")}, "flush_interval"),
     ({"max_samples": 0}, "max_samples")],
)  # fmt: skip
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises((ValueError, TypeError), match=field):
        StatsDCollector(**kwargs)


async def test_datadog_dashboard_queries_name_metrics_the_bridge_really_sends():
    import json
    import re

    from yokedcache import CacheConfig, YokedCache
    from yokedcache.monitoring import CacheMetrics, StatsDCollector

    from .receivers import StatsDListener
    from .redis_server import free_port
    from .test_examples import run_example

    listener = StatsDListener()
    metrics = CacheMetrics([StatsDCollector("127.0.0.1", listener.port, prefix="myapp.cache", use_tags=True)])
    redis_cache = YokedCache(CacheConfig(metrics=metrics, redis_url=f"redis://127.0.0.1:{free_port()}/0",
                                         retry_attempts=0))  # fmt: skip
    async with YokedCache(CacheConfig(metrics=metrics)) as cache:
        await cache.set("a", 1)
        await cache.get("a")
        await cache.get("b")
        await cache.delete("a")
        await redis_cache.get("x")  # an error, and a pool and breaker to report
        metrics.force_flush()
        listener.wait_for(lambda: any(line.startswith("myapp.cache.errors:") for line in listener.lines()))
    await redis_cache.close()
    metrics.shutdown()
    listener.close()
    sent: dict[str, set[str]] = {}
    for line in listener.lines():
        name, _, rest = line.partition(":")
        tags = rest.split("|#", 1)[1].split(",") if "|#" in rest else []
        sent.setdefault(name, set()).update(t.split(":", 1)[0] for t in tags)

    dashboard = json.loads(run_example("datadog_dashboard.py"))
    queries = [r["q"] for w in dashboard["widgets"] for r in w["definition"]["requests"]]
    assert len(queries) >= 10
    datadog_suffixes = (".avg", ".median", ".95percentile", ".max", ".count")
    for query in queries:
        name, group = re.match(r"^\w+:([\w.]+)\{\*\}(?: by \{([\w.,]+)\})?", query).groups()
        for suffix in datadog_suffixes:  # DataDog's names for an |h metric's aggregates
            if name.endswith(suffix) and name.removesuffix(suffix) in sent:
                name = name.removesuffix(suffix)
        assert name in sent, f"{query}: {name} is never sent (sent: {sorted(sent)})"
        for tag in (group or "").split(",") if group else ():
            assert tag in sent[name], f"{query}: {name} never carries tag {tag}"


# -- sample counts under the receivers' integer arithmetic ----------------------------------
def _decode(rate_field: str) -> tuple[int, float]:
    """What receivers make of one line's ``|@rate``: Go's ``int64(1/rate)`` / ``uint64(...)``
    (Datadog agent, Collector statsd receiver) and JavaScript's ``1/rate`` (Etsy StatsD).
    Python's float parsing and division are IEEE doubles, exactly as in Go and JavaScript."""
    rate = float(rate_field[2:]) if rate_field else 1.0
    assert re.fullmatch(r"[0-9.]+", rate_field[2:] or "1"), rate_field  # Etsy: digits and dots only
    return int(1 / rate), 1 / rate


def test_every_count_up_to_100000_decodes_exactly_under_truncation():
    for count in range(1, 100_001):
        parts = exact_parts(count)
        assert len(parts) <= 2 and sum(parts) == count
        truncated = floated = 0
        for part in parts:
            t, f = _decode(format_rate(part))
            truncated += t
            floated += f
        assert truncated == count, count
        assert floated == count, count  # Etsy's timer count: no float residue either


def test_the_old_fifteen_decimal_rate_lost_a_sample():
    assert int(1 / 0.142857142857143) == 6  # what `@1/7` with 15 decimals decoded to
    assert _decode(format_rate(7))[0] == 7


@given(st.lists(st.integers(min_value=0, max_value=100_000), min_size=1, max_size=19),
       st.integers(min_value=1, max_value=500))  # fmt: skip
def test_line_allocation_keeps_every_bucket_count_and_bounds_the_lines(counts, max_samples):
    allocation = allocate_lines(counts, max_samples)
    for count, lines in zip(counts, allocation, strict=True):
        assert sum(_decode(format_rate(w))[0] for w in lines) == count
        if count:
            assert lines
    filled = sum(1 for c in counts if c)
    # proportional shares, each rounded, each split in at most two exact parts
    assert sum(len(x) for x in allocation) <= 2 * (max_samples + filled)
    if sum(counts) <= max_samples:
        assert all(w == 1 for lines in allocation for w in lines)  # no rates at all

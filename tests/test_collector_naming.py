"""One set of Prometheus names on every path the dashboards and alerts may be fed by.

No Collector binary can be installed here, so its naming is implemented from its source, rule
by rule, and run over what a live cache really records:

- direct scrape: ``PrometheusCollector`` (the Python OTel exporter), scraped for real;
- OTLP -> Collector -> Prometheus: the SDK's data (an ``InMemoryMetricReader`` sees exactly the
  names, units and types ``OTLPCollector`` sends) through the Collector's prometheus exporter;
- StatsD -> Collector statsd receiver -> (OTLP) -> Collector -> Prometheus: the lines our StatsD
  exporter really sends, parsed as the receiver parses them under the shipped
  ``otel-collector-statsd.yaml``, then named like the OTLP path.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics, PrometheusCollector, StatsDCollector
from yokedcache.telemetry.semconv import DURATION_BUCKETS

from .receivers import StatsDListener
from .redis_server import free_port
from .test_telemetry import _every_cache_aside_event

CONFIG = Path(__file__).resolve().parent.parent / "collector-config"

# -- the Collector's Prometheus naming ---------------------------------------------------------
# The Collector's prometheus and prometheusremotewrite exporters name series with the Go package
# github.com/prometheus/otlptranslator (MetricNamer.Build with the default translation strategy
# UnderscoreEscapingWithSuffixes). Rules implemented from metric_namer.go (normalizeName,
# addUnitTokens) and unit_namer.go (buildUnitSuffixes, cleanUpUnit):
#   1. the name is split into tokens at every character outside [a-zA-Z0-9:] ("." becomes "_",
#      runs of separators collapse);
#   2. the unit is split at "/"; a part containing "{" or "}" (an annotation) is dropped; the main
#      part maps through unitMap (s -> seconds, By -> bytes, 1 -> "", ...) and the per part through
#      perUnitMap with "per_" in front; each is appended unless already a token of the name;
#   3. monotonic sums: every "total" token is removed and "total" appended;
#   4. gauges whose unit is exactly "1": every "ratio" token is removed and "ratio" appended;
#   5. a name starting with a digit gets a leading "_".
# Histograms then expose <name>_bucket/_sum/_count. Exponential histograms (what the statsd
# receiver builds for a timer without explicit_buckets) have no classic buckets a query can use
# there (contrib issue #49747: only le="+Inf"); this test counts them as one family name.
UNIT_MAP = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds", "us": "microseconds",
    "ns": "nanoseconds", "By": "bytes", "KiBy": "kibibytes", "MiBy": "mebibytes", "GiBy": "gibibytes",
    "TiBy": "tibibytes", "KBy": "kilobytes", "MBy": "megabytes", "GBy": "gigabytes", "TBy": "terabytes",
    "m": "meters", "V": "volts", "A": "amperes", "J": "joules", "W": "watts", "g": "grams", "Cel": "celsius",
    "Hz": "hertz", "1": "", "%": "percent",
}  # fmt: skip
PER_UNIT_MAP = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}


def _clean_unit(unit: str) -> str:
    return re.sub(r"_+", "_", re.sub(r"[^a-zA-Z0-9:]", "_", unit)).removeprefix("_")


def _unit_suffixes(unit: str) -> tuple[str, str]:
    main_part, _, per_part = unit.partition("/")
    main = per = ""
    main_part = main_part.strip()
    if main_part and not re.search(r"[{}]", main_part):
        main = UNIT_MAP.get(main_part, main_part)
    per_part = per_part.strip()
    if per_part and not re.search(r"[{}]", per_part):
        per = "per_" + PER_UNIT_MAP.get(per_part, per_part)
    return _clean_unit(main), _clean_unit(per)


def collector_name(name: str, unit: str, kind: str) -> str:
    """The otlptranslator name for an OTLP metric; ``kind``: counter (monotonic sum), updown
    (non-monotonic sum), gauge, histogram or exponential_histogram."""
    tokens = [t for t in re.split(r"[^a-zA-Z0-9:]", name) if t]
    main, per = _unit_suffixes(unit)
    if main in tokens:
        main = ""
    if per == "per_":
        per = ""
    else:
        per = per.removesuffix("_")
        if per in tokens:
            per = ""
    if per:
        main = main.removesuffix("_")
    tokens += [t for t in (main, per) if t]
    if kind == "counter":
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if unit == "1" and kind == "gauge":
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    out = "_".join(tokens)
    return "_" + out if out[:1].isdigit() else out


def series_names(family: str, kind: str) -> set[str]:
    if kind == "histogram":
        return {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
    return {family}  # sums, gauges; an exponential histogram as one family (see above)


def test_translator_rules_reproduce_the_documented_examples():
    # The examples in otlptranslator's own documentation and the findings.
    assert collector_name("http.server.request.duration", "s", "histogram") == "http_server_request_duration_seconds"
    assert collector_name("requests.count", "1", "counter") == "requests_count_total"
    assert collector_name("memory.usage", "By", "gauge") == "memory_usage_bytes"
    assert collector_name("yokedcache.cache.hit_rate", "1", "gauge") == "yokedcache_cache_hit_rate_ratio"
    assert collector_name("yokedcache.cache.gets", "{get}", "counter") == "yokedcache_cache_gets_total"
    assert collector_name("yokedcache.cache.size_bytes", "By", "gauge") == "yokedcache_cache_size_bytes"
    assert collector_name("net.io", "By/s", "gauge") == "net_io_bytes_per_second"


# -- what the dashboards and alerts query --------------------------------------------------------
def queried_names() -> set[str]:
    exprs = [r["expr"] for g in yaml.safe_load((CONFIG / "prometheus/alerts.yml").read_text())["groups"]
             for r in g["rules"]]  # fmt: skip
    dashboard = json.loads((CONFIG / "grafana/dashboards/yokedcache.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    return set(re.findall(r"\byokedcache_[a-z0-9_]+", " ".join(exprs)))


DURATION_SERIES = {
    "yokedcache_cache_operation_duration_seconds_bucket",
    "yokedcache_cache_operation_duration_seconds_count",
}


@asynccontextmanager
async def live_traffic(redis_url: str, **config: object) -> AsyncIterator[None]:
    """Every built-in instrument gets data: a Redis cache (pool, health), a bounded memory cache
    (evictions, size) and one against a dead port (errors, breaker opens)."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with (
        YokedCache(CacheConfig(redis_url=redis_url, **config)) as redis_cache,  # type: ignore[arg-type]
        YokedCache(CacheConfig(max_keys=2, **config)) as memory_cache,  # type: ignore[arg-type]
        YokedCache(CacheConfig(redis_url=dead, retry_attempts=0, circuit_failure_threshold=1, **config)) as failing,  # type: ignore[arg-type]  # fmt: skip
    ):
        for cache in (redis_cache, memory_cache):
            for i in range(5):
                await cache.set(f"k{i}", i, tags={"t"})
                await cache.get(f"k{i}")
                await cache.get(f"missing{i}")
            await cache.delete("k1")
            await cache.invalidate_tags(["t"])
            await cache.refresh_usage()
        for _ in range(3):
            await failing.get("k")
        async with YokedCache(CacheConfig(name="aside", **config)) as aside_cache:  # type: ignore[arg-type]
            await _every_cache_aside_event(aside_cache)  # the cache-aside instruments
        yield


def kind_of(metric) -> str:
    from opentelemetry.sdk.metrics.export import Gauge, Histogram, Sum

    data = metric.data
    if isinstance(data, Sum):
        return "counter" if data.is_monotonic else "updown"
    if isinstance(data, Gauge):
        return "gauge"
    assert isinstance(data, Histogram), type(data)
    return "histogram"


async def test_dashboard_and_alert_names_exist_on_direct_scrape_and_through_the_collector(redis_url):
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from prometheus_client import generate_latest

    prometheus = PrometheusCollector(port=None)
    reader = InMemoryMetricReader()  # sees the names, units and types OTLPCollector would send
    mp = MeterProvider(metric_readers=[reader, prometheus.metric_reader()])
    async with live_traffic(redis_url, meter_provider=mp):
        direct_text = generate_latest(prometheus.registry).decode()
        otlp = [
            (m.name, m.unit or "", kind_of(m))
            for rm in reader.get_metrics_data().resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        ]
    mp.shutdown()

    direct = {s.name for f in text_string_to_metric_families(direct_text) for s in f.samples}
    through_collector: set[str] = set()
    for name, unit, kind in otlp:
        through_collector |= series_names(collector_name(name, unit, kind), kind)

    wanted = queried_names()
    assert {"yokedcache_cache_gets_total", "yokedcache_cache_health", "yokedcache_cache_pool_utilization",
            "yokedcache_cache_evictions_total"} <= wanted  # fmt: skip
    assert wanted - direct == set(), "queried, missing from a direct scrape"
    assert wanted - through_collector == set(), "queried, missing through the Collector"
    # Not only what is queried: every built-in series is named alike on both paths.
    built_in_direct = {n for n in direct if n.startswith("yokedcache_")}
    built_in_collector = {n for n in through_collector if n.startswith("yokedcache_")}
    assert built_in_direct == built_in_collector


# -- StatsD -> Collector statsd receiver ----------------------------------------------------------
# The contrib statsd receiver, implemented from its source (receiver/statsdreceiver/internal/parser/
# statsd_parser.go: parseMessageToMetric, Aggregate, explicitBucket.UpdateByIncr; metric_translator.go:
# buildCounterMetric, buildExplicitBucketHistogramMetric, sampleValue; the timer case of explicit_buckets
# as fixed by PR #49752) and its README ("timer_histogram_mapping", "explicit_buckets"):
#   1. a line is ``name:value|type[|@rate][|#k:v,...]``; tags become attributes, plus ``metric_type``
#      (counter, gauge, timing, histogram, distribution) with ``enable_metric_type``; no unit is set;
#   2. per (name, type, attributes) and flush: a counter is a delta Sum of value / rate (monotonic only
#      with ``is_monotonic_counter``); a gauge keeps the last value;
#   3. ms / h / d go to the observer of their ``timer_histogram_mapping`` (timing; histogram and
#      distribution): ``histogram`` builds, for a name matched (Go regexp MatchString: unanchored) by an
#      ``explicit_buckets`` ``matcher_pattern``, first match wins, an explicit-bucket delta Histogram
#      with those bounds: each line adds ``uint64(1 / rate)`` samples (1 without a rate) to the first
#      bucket whose bound is >= the value, else to +Inf; any other name gets an exponential histogram;
#      ``summary`` a Summary, ``gauge`` a Gauge, none at all drops the line.
# Then the transform processor's ``scale_metric(factor, unit)`` (processor/transformprocessor/internal/
# metrics/func_scale.go) multiplies a Histogram's bounds, sum, min and max and sets the unit; it refuses
# exponential histograms.
_TYPE_NAMES = {"c": "counter", "g": "gauge", "ms": "timing", "h": "histogram", "d": "distribution"}


@dataclass
class ReceivedMetric:
    name: str
    kind: str  # counter, updown, gauge, histogram, exponential_histogram, summary
    unit: str = ""
    bounds: list[float] = field(default_factory=list)
    #: per attribute set: the value (sums, gauges) or bucket counts, +Inf last (histograms)
    points: dict[frozenset[tuple[str, str]], Any] = field(default_factory=dict)


def statsd_receiver(lines: list[str], receiver: dict) -> dict[str, ReceivedMetric]:
    """What the receiver builds from ``lines`` in one aggregation interval, by metric name."""
    observers: dict[str, dict] = {}
    for mapping in receiver.get("timer_histogram_mapping", ()):
        for t in {"timing": ["ms"], "timer": ["ms"], "histogram": ["h", "d"], "distribution": ["h", "d"]}[
            mapping["statsd_type"]
        ]:
            observers[t] = mapping
    out: dict[str, ReceivedMetric] = {}
    for line in lines:
        head, *parts = line.split("|")
        name, _, value_text = head.partition(":")
        statsd_type, rate, attrs = parts[0], 0.0, {}
        for part in parts[1:]:
            if part.startswith("@"):
                rate = float(part[1:])
            elif part.startswith("#"):
                attrs.update(tag.split(":", 1) for tag in part[1:].split(",") if tag)
        if receiver.get("enable_metric_type"):
            attrs["metric_type"] = _TYPE_NAMES[statsd_type]
        key, value = frozenset(attrs.items()), float(value_text)
        if statsd_type == "c":
            kind = "counter" if receiver.get("is_monotonic_counter") else "updown"
            metric = out.setdefault(name, ReceivedMetric(name, kind))
            metric.points[key] = metric.points.get(key, 0.0) + (value / rate if 0 < rate < 1 else value)
            continue
        if statsd_type == "g":
            out.setdefault(name, ReceivedMetric(name, "gauge")).points[key] = value
            continue
        mapping = observers.get(statsd_type)
        observer = mapping["observer_type"] if mapping else "disabled"
        assert observer == "histogram", f"{line}: observer {observer} (the shipped config maps every timer)"
        explicit = next((e for e in (mapping.get("histogram") or {}).get("explicit_buckets", ())
                         if re.search(e["matcher_pattern"], name)), None)  # fmt: skip
        if explicit is None:
            out.setdefault(name, ReceivedMetric(name, "exponential_histogram")).points[key] = None
            continue
        bounds = [float(b) for b in explicit["buckets"]]
        metric = out.setdefault(name, ReceivedMetric(name, "histogram", bounds=bounds))
        counts = metric.points.setdefault(key, [0] * (len(bounds) + 1))
        samples = int(1 / rate) if 0 < rate < 1 else 1  # uint64(count): truncation
        counts[next((i for i, b in enumerate(bounds) if value <= b), len(bounds))] += samples
    return out


def apply_transform(metrics: dict[str, ReceivedMetric], processor: dict) -> None:
    """The shipped transform processor's statements (only the form it ships is understood)."""
    for group in processor["metric_statements"]:
        assert group["context"] == "metric"
        for statement in group["statements"]:
            match = re.fullmatch(
                r'scale_metric\(([0-9.]+), "(\w+)"\) where name == "([^"]+)" and type == METRIC_DATA_TYPE_HISTOGRAM',
                statement,
            )
            assert match, f"not understood by this test: {statement}"
            factor, unit, name = float(match.group(1)), match.group(2), match.group(3)
            metric = metrics.get(name)
            if metric is not None and metric.kind == "histogram":
                metric.bounds = [b * factor for b in metric.bounds]
                metric.unit = unit


async def test_statsd_through_the_collector_statsd_receiver_gives_the_dashboard_names(redis_url):
    config = yaml.safe_load((CONFIG / "otel-collector-statsd.yaml").read_text())
    receiver = config["receivers"]["statsd"]
    assert receiver["is_monotonic_counter"] is True  # the bridge sends per-flush deltas of monotonic counters
    pipeline = config["service"]["pipelines"]["metrics"]["processors"]
    transforms = [config["processors"][p] for p in pipeline if p.split("/", 1)[0] == "transform"]

    listener = StatsDListener()
    # The prefix the shipped config's comment tells users to set.
    prefix = re.search(r'prefix="([^"]+)"', (CONFIG / "otel-collector-statsd.yaml").read_text()).group(1)
    collector = StatsDCollector("127.0.0.1", listener.port, prefix=prefix, use_tags=True, flush_interval=60)
    metrics = CacheMetrics([collector])
    async with live_traffic(redis_url, metrics=metrics):
        metrics.force_flush()
        listener.wait_for(lambda: any(x.startswith(f"{prefix}.errors:") for x in listener.lines()))
    metrics.shutdown()
    listener.close()

    received = statsd_receiver(listener.lines(), receiver)
    for transform in transforms:
        apply_transform(received, transform)
    names: set[str] = set()
    labels: dict[str, set[str]] = {}
    for metric in received.values():
        family = collector_name(metric.name, metric.unit, metric.kind)
        names |= series_names(family, metric.kind)
        for attrs in metric.points:
            labels.setdefault(family, set()).update(re.sub(r"[^a-zA-Z0-9_]", "_", k) for k, _ in attrs)

    # Every series the dashboards and alerts query exists on this path too, latency included.
    assert queried_names() - names == set()
    assert names >= DURATION_SERIES and "yokedcache_cache_operation_duration" not in names
    assert {"result"} <= labels["yokedcache_cache_gets_total"]
    assert {"operation", "error_type"} <= labels["yokedcache_cache_errors_total"]
    assert {"operation"} <= labels["yokedcache_cache_operation_duration_seconds"]

    durations = received["yokedcache.cache.operation_duration"]
    assert durations.unit == "s"
    # the le bounds a direct scrape shows (the SDK's bucket advisory), so quantiles agree across paths
    assert len(durations.bounds) == len(DURATION_BUCKETS)
    assert all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(durations.bounds, DURATION_BUCKETS, strict=True))
    # every operation counted once: the sample rates decode exactly under the receiver's truncation
    counted: dict[tuple[str, str], int] = {}
    for attrs, counts in durations.points.items():
        a = dict(attrs)
        key = (a["cache.name"], a["operation"])
        counted[key] = counted.get(key, 0) + sum(counts)
        assert counts[-1] == 0, f"{key}: samples beyond the last bound"
    # (the cache against a dead port is also named "redis": its 3 failed gets are timed too)
    issued = {"redis": {"get": 10 + 3, "set": 5, "delete": 1, "invalidate_tags": 1},
              "memory": {"get": 10, "set": 5, "delete": 1, "invalidate_tags": 1}}  # fmt: skip
    for cache_name, ops in issued.items():
        assert {op: counted.get((cache_name, op)) for op in ops} == ops, cache_name


def test_the_shipped_statsd_buckets_are_the_caches_in_milliseconds():
    receiver = yaml.safe_load((CONFIG / "otel-collector-statsd.yaml").read_text())["receivers"]["statsd"]
    (timing,) = [m for m in receiver["timer_histogram_mapping"] if m["statsd_type"] == "timing"]
    (explicit,) = timing["histogram"]["explicit_buckets"]
    assert re.search(explicit["matcher_pattern"], "yokedcache.cache.operation_duration")
    assert not re.search(explicit["matcher_pattern"], "myapp.cache.operation_duration")
    assert all(math.isclose(ms, s * 1000, rel_tol=1e-9)
               for ms, s in zip(explicit["buckets"], DURATION_BUCKETS, strict=True))  # fmt: skip


@pytest.mark.parametrize("name", ["otel-collector.yaml", "otel-collector-statsd.yaml"])
def test_no_shipped_config_renames_or_drops_what_the_queries_need(name):
    """The naming above assumes the exporter's defaults: no namespace, suffixes on."""
    exporters = yaml.safe_load((CONFIG / name).read_text())["exporters"]
    for component_id, settings in exporters.items():
        if component_id.split("/", 1)[0] == "prometheus":
            assert "namespace" not in (settings or {})
            assert (settings or {}).get("add_metric_suffixes", True) is True

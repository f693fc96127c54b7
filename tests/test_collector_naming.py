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
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics, PrometheusCollector, StatsDCollector

from .receivers import StatsDListener
from .redis_server import free_port

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
# Histograms then expose <name>_bucket/_sum/_count; exponential histograms (what the statsd
# receiver builds for timers) become native histograms, with no classic _bucket/_count series.
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
    if kind == "exponential_histogram":  # a native histogram: one series, no classic suffixes
        return {family}
    return {family}


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
def statsd_receiver_metrics(lines: list[str], receiver: dict) -> list[tuple[str, str, str, dict[str, str]]]:
    """``(name, unit, kind, attributes)`` per line as the contrib statsd receiver builds them
    (receiver/statsdreceiver/internal/protocol/statsd_parser.go and metric_translator.go):
    the name is the text before ":"; ``|#k:v`` tags become attributes, plus ``metric_type`` when
    ``enable_metric_type``; no unit is ever set; a counter is a delta Sum, monotonic only with
    ``is_monotonic_counter`` (the Collector's prometheus exporter drops non-monotonic delta sums);
    a gauge is a Gauge; ms/h/d follow ``timer_histogram_mapping`` (histogram -> exponential
    histogram, summary -> summary, gauge -> gauge, none -> dropped)."""
    observers = {m["statsd_type"]: m["observer_type"] for m in receiver.get("timer_histogram_mapping", ())}
    type_names = {"c": "counter", "g": "gauge", "ms": "timing", "h": "histogram", "d": "distribution"}
    out = []
    for line in lines:
        head, *parts = line.split("|")
        name, _, _value = head.partition(":")
        statsd_type = parts[0]
        attrs = {}
        for part in parts[1:]:
            if part.startswith("#"):
                attrs.update(tag.split(":", 1) for tag in part[1:].split(","))
        if receiver.get("enable_metric_type"):
            attrs["metric_type"] = type_names[statsd_type]
        if statsd_type == "c":
            kind = "counter" if receiver.get("is_monotonic_counter") else "dropped (non-monotonic delta sum)"
        elif statsd_type == "g":
            kind = "gauge"
        else:
            mapping = observers.get(type_names[statsd_type]) or (
                observers.get("histogram") if statsd_type == "d" else None
            )
            kind = {"histogram": "exponential_histogram", "summary": "summary", "gauge": "gauge"}.get(
                mapping or "", "dropped (no observer)"
            )
        out.append((name, "", kind, attrs))
    return out


async def test_statsd_through_the_collector_statsd_receiver_gives_the_dashboard_names(redis_url):
    config = yaml.safe_load((CONFIG / "otel-collector-statsd.yaml").read_text())
    receiver = config["receivers"]["statsd"]
    assert receiver["is_monotonic_counter"] is True  # the bridge sends per-flush deltas of monotonic counters

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

    parsed = statsd_receiver_metrics(listener.lines(), receiver)
    assert not [p for p in parsed if p[2].startswith("dropped")], "lines the Collector would drop"
    names: set[str] = set()
    labels: dict[str, set[str]] = {}
    for name, unit, kind, attrs in parsed:
        family = collector_name(name, unit, kind)
        names |= series_names(family, kind)
        labels.setdefault(family, set()).update(re.sub(r"[^a-zA-Z0-9_]", "_", k) for k in attrs)

    wanted = queried_names()
    # Durations arrive as an exponential histogram in milliseconds with no unit: a native
    # histogram named yokedcache_cache_operation_duration, not the classic _seconds series.
    # The panels and alerts built on them need the OTLP path (README, "Which path").
    assert wanted - names == DURATION_SERIES
    assert "yokedcache_cache_operation_duration" in names
    assert {"result"} <= labels["yokedcache_cache_gets_total"]
    assert {"operation", "error_type"} <= labels["yokedcache_cache_errors_total"]


@pytest.mark.parametrize("name", ["otel-collector.yaml", "otel-collector-statsd.yaml"])
def test_no_shipped_config_renames_or_drops_what_the_queries_need(name):
    """The naming above assumes the exporter's defaults: no namespace, suffixes on."""
    exporters = yaml.safe_load((CONFIG / name).read_text())["exporters"]
    for component_id, settings in exporters.items():
        if component_id.split("/", 1)[0] == "prometheus":
            assert "namespace" not in (settings or {})
            assert (settings or {}).get("add_metric_suffixes", True) is True

"""The StatsD exporter against the real Etsy StatsD daemon (npm ``statsd`` 0.9).

The daemon runs with a 1 s flush and a small backend module that appends every flush
(counters, timer data) to a file as one JSON line. What it computed is what a Graphite or
console backend would have been handed.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import time
from bisect import bisect_left
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics, StatsDCollector
from yokedcache.telemetry.semconv import DURATION_BUCKETS

from .redis_server import free_port, in_ci

NODE_DIR = Path(__file__).resolve().parent / ".node"
STATSD_HINT = (
    "Etsy StatsD not found: install it with 'npm install --prefix tests/.node statsd@0.9.0' "
    "(needs node and npm; .ci/run does this), or point YOKEDCACHE_ETSY_STATSD at its stats.js"
)

RECORDER_JS = """
const fs = require('fs');
exports.init = function (startup, config, events) {
  events.on('flush', function (ts, metrics) {
    fs.appendFileSync(config.recorder.path, JSON.stringify({
      ts: ts, counters: metrics.counters, timer_data: metrics.timer_data,
      timer_counters: metrics.timer_counters, gauges: metrics.gauges}) + "\\n");
  });
  return true;
};
"""


def stats_js() -> Path:
    found = Path(os.environ.get("YOKEDCACHE_ETSY_STATSD", NODE_DIR / "node_modules/statsd/stats.js"))
    if shutil.which("node") is None or not found.is_file():
        if in_ci():
            pytest.fail(STATSD_HINT, pytrace=False)
        pytest.skip(STATSD_HINT)
    return found


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EtsyStatsD:
    def __init__(self, directory: Path) -> None:
        self.port = free_udp_port()
        self.flushes_file = directory / "flushes.jsonl"
        (directory / "recorder.js").write_text(RECORDER_JS)
        config = {
            "address": "127.0.0.1", "port": self.port, "mgmt_address": "127.0.0.1", "mgmt_port": free_port(),
            "flushInterval": 1000, "percentThreshold": [90], "deleteIdleStats": True,
            "backends": [str(directory / "recorder.js")], "recorder": {"path": str(self.flushes_file)},
        }  # fmt: skip
        (directory / "config.js").write_text(json.dumps(config))
        self.log = (directory / "statsd.log").open("w")
        self.proc = subprocess.Popen(["node", str(stats_js()), str(directory / "config.js")],
                                     stdout=self.log, stderr=subprocess.STDOUT)  # fmt: skip

    def flushes(self) -> list[dict]:
        if not self.flushes_file.exists():
            return []
        return [json.loads(line) for line in self.flushes_file.read_text().splitlines() if line.strip()]

    def wait(self, predicate, timeout: float, what: str) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            flushes = self.flushes()
            if predicate(flushes):
                return flushes
            assert self.proc.poll() is None, f"statsd exited: {self.log.name}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}; {len(flushes)} flushes"
            time.sleep(0.05)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class TruthReader:
    """A second reader on the same meter provider: the histograms exactly as recorded."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()

    def metric_reader(self, **_: object) -> InMemoryMetricReader:
        return self.reader

    def histogram(self, name: str, **attrs: str):
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            if dict(point.attributes or {}) == {"cache.name": "memory", **attrs}:
                                return point
        raise AssertionError(f"{name}{attrs} not recorded")


def bucket_of(value: float, bounds) -> int:
    """Index of the histogram bucket (lower, upper] holding ``value``."""
    return bisect_left(list(bounds), value)


def p90_bucket(point) -> int:
    """The bucket that holds the true 90th percentile (rank ceil(0.9 n)) of a histogram point."""
    rank = math.ceil(0.9 * point.count)
    seen = 0
    for i, count in enumerate(point.bucket_counts):
        seen += count
        if seen >= rank:
            return i
    raise AssertionError("empty histogram")


@pytest.fixture
def etsy(tmp_path):
    stats_js()
    daemon = EtsyStatsD(tmp_path)
    yield daemon
    daemon.close()


@pytest.mark.parametrize("use_tags", [False, True], ids=["plain", "use_tags"])
async def test_real_etsy_statsd_counts_exactly_and_gets_timers_in_ms(etsy, use_tags):
    etsy.wait(lambda f: len(f) >= 1, 30, "the daemon's first flush")
    truth = TruthReader()
    collector = StatsDCollector("127.0.0.1", etsy.port, prefix="myapp.cache", use_tags=use_tags, flush_interval=60)
    metrics = CacheMetrics([collector, truth])
    cache = YokedCache(CacheConfig(metrics=metrics))
    n_set, n_get, n_delete = 300, 500, 120
    for i in range(n_set):
        await cache.set(f"k{i}", i)
    for i in range(n_get):
        await cache.get(f"k{i}")  # k300..k499 were never set: 200 misses
    for i in range(n_delete):
        await cache.delete(f"k{i}")
    # An application timing whose true p90 is known: 1,000 values from 0.1 ms to 20 ms.
    app_values = [0.0001 * (1 + i % 200) for i in range(1000)]
    for value in app_values:
        await metrics.timing("app.request", value)

    # Send right after a daemon flush so that the whole burst lands in one flush interval.
    before = len(etsy.flushes())
    etsy.wait(lambda f: len(f) > before, 5, "a flush")
    metrics.force_flush()

    def key(name: str, app: bool = False, **tags: str) -> str:
        if use_tags:  # Etsy keys a tagged metric as name;k=v; the cache's own points name their cache
            tags = tags if app else {"cache.name": "memory", **tags}
            return name + "".join(f";{k}={v}" for k, v in tags.items())
        return name + "".join(f".{tags[k]}" for k in sorted(tags))  # plain: no cache name segment

    sets_key = key("myapp.cache.sets")

    def counter(flushes: list[dict], name: str) -> float:
        return sum(f["counters"].get(name, 0) for f in flushes)

    flushes = etsy.wait(lambda f: counter(f, sets_key) >= n_set, 10, "the counters")
    # One more daemon flush: anything still in flight shows up (and would fail below).
    seen = len(flushes)
    flushes = etsy.wait(lambda f: len(f) > seen, 5, "one more flush")

    assert sum(f["counters"].get("statsd.bad_lines_seen", 0) for f in flushes) == 0
    assert counter(flushes, sets_key) == n_set
    assert counter(flushes, key("myapp.cache.gets", result="hit")) == n_get - 200
    assert counter(flushes, key("myapp.cache.gets", result="miss")) == 200
    assert counter(flushes, key("myapp.cache.hits")) == n_get - 200
    assert counter(flushes, key("myapp.cache.misses")) == 200
    assert counter(flushes, key("myapp.cache.deletes")) == n_delete
    assert not any(k.startswith("myapp.cache.operation_duration") for f in flushes for k in f["counters"])

    def timer(name: str) -> dict:
        found = [f["timer_data"][name] for f in flushes if f["timer_data"].get(name, {}).get("count")]
        assert len(found) == 1, f"{name}: in {len(found)} flushes; keys: {sorted(flushes[-1]['timer_data'])}"
        return found[0]

    for operation, issued in (("set", n_set), ("get", n_get), ("delete", n_delete)):
        data = timer(key("myapp.cache.operation_duration", operation=operation))
        assert data["count"] == issued, operation  # exact, sample rates included
        point = truth.histogram("yokedcache.cache.operation.duration", operation=operation)
        assert point.count == issued
        upper_90 = data["upper_90"] / 1000  # the daemon's figure is in milliseconds
        assert abs(bucket_of(upper_90, point.explicit_bounds) - p90_bucket(point)) <= 1, (operation, data)

    data = timer(key("myapp.cache.app.request", app=True))
    assert data["count"] == len(app_values)
    true_p90 = sorted(app_values)[math.ceil(0.9 * len(app_values)) - 1]  # 18 ms
    assert 10 < data["upper_90"] < 25  # milliseconds, not seconds
    assert abs(bucket_of(data["upper_90"] / 1000, DURATION_BUCKETS) - bucket_of(true_p90, DURATION_BUCKETS)) <= 1
    await cache.close()
    metrics.shutdown()

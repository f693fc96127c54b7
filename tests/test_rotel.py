"""OTLP through a Collector we did not write: PyPI's ``rotel`` (a Rust OpenTelemetry collector).

Its binary ships inside the wheel (the ``test`` extra installs it; nothing is downloaded at run
time). One ``CacheMetrics`` holds two ``OTLPCollector``s: one exports straight to an in-process
receiver, the other to rotel, which relays to a second receiver. What reaches the two receivers
must be the same: metric names, units, temporality, attributes, exemplars, resource, and spans.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics, OTLPCollector
from yokedcache.telemetry import semconv as sc

from .receivers import OTLPGrpcReceiver, OTLPHttpReceiver
from .redis_server import free_port


def rotel_binary() -> Path:
    try:
        import rotel
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("rotel not installed: pip install -e '.[test]' (it is in the test extra)")
    return Path(rotel.__file__).resolve().parent / "rotel-agent"


class Rotel:
    """``rotel-agent start`` relaying OTLP (gRPC and HTTP receivers) to ``endpoint`` by ``protocol``."""

    def __init__(self, endpoint: str, protocol: str, tmp: Path) -> None:
        self.grpc_port, self.http_port = free_port(), free_port()
        self.proc = subprocess.Popen(
            [str(rotel_binary()), "start", "--otlp-grpc-endpoint", f"127.0.0.1:{self.grpc_port}",
             "--otlp-http-endpoint", f"127.0.0.1:{self.http_port}", "--exporter", "otlp",
             "--otlp-exporter-endpoint", endpoint, "--otlp-exporter-protocol", protocol,
             "--pid-file", str(tmp / "rotel.pid")],
            stdout=subprocess.DEVNULL, stderr=(tmp / "rotel.log").open("wb"),
        )  # fmt: skip
        self.log = tmp / "rotel.log"
        deadline = time.monotonic() + 15
        for port in (self.grpc_port, self.http_port):
            while not _listening(port):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise AssertionError(f"rotel did not start: {self.log.read_text()[-2000:]}")
                time.sleep(0.05)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _value(v: Any) -> Any:
    return getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None


def _attrs(kvs: Any) -> tuple:
    return tuple(sorted((kv.key, _value(kv.value)) for kv in kvs))


def metric_view(requests: list) -> dict[str, Any]:
    """What must survive the relay, per metric: unit, kind, temporality, each point's attributes,
    values and exemplars (trace ids and values), and the resource it came with."""
    out: dict[str, Any] = {}
    for request in requests:
        for rm in request.resource_metrics:
            resource = _attrs(rm.resource.attributes)
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    data = getattr(m, kind)
                    points = sorted(
                        (_attrs(p.attributes), _point_values(kind, p),
                         tuple(sorted((e.trace_id.hex(), e.span_id.hex(), e.as_double) for e in p.exemplars)))
                        for p in data.data_points
                    )  # fmt: skip
                    meta = (m.unit, kind, getattr(data, "aggregation_temporality", None), resource, sm.scope.name)
                    # every export's points: exemplars are reset at each collection, so only the
                    # collection after the operations carries them
                    out.setdefault(m.name, [meta, []])[1].append(points)
    return out


def _point_values(kind: str, p: Any) -> tuple:
    if kind == "histogram":
        return (p.count, p.sum, tuple(p.bucket_counts), tuple(p.explicit_bounds))
    return (p.WhichOneof("value"), _value_of_number(p))


def _value_of_number(p: Any) -> Any:
    return p.as_int if p.WhichOneof("value") == "as_int" else p.as_double


def span_view(requests: list) -> list:
    return sorted(
        (s.name, s.kind, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.start_time_unix_nano,
         s.end_time_unix_nano, _attrs(s.attributes), s.status.code, _attrs(rs.resource.attributes))
        for r in requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans
    )  # fmt: skip


def settle(predicate: Any, timeout: float = 15.0) -> None:
    """Poll until ``predicate()`` holds or the deadline passes (the assertions after it say what differs)."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_metrics_and_spans_cross_rotel_intact(protocol, redis_url, tmp_path):
    grpc = protocol == "grpc"
    direct, relayed = (OTLPGrpcReceiver(), OTLPGrpcReceiver()) if grpc else (OTLPHttpReceiver(), OTLPHttpReceiver())
    rotel = Rotel(relayed.endpoint, "grpc" if grpc else "http", tmp_path)
    try:
        to_rotel = f"http://127.0.0.1:{rotel.grpc_port if grpc else rotel.http_port}"
        collectors = [OTLPCollector(endpoint=e, protocol=protocol, insecure=True, export_interval=60)
                      for e in (direct.endpoint, to_rotel)]  # fmt: skip
        metrics = CacheMetrics(collectors, resource_attributes={"service.name": "rotel-test"})
        async with YokedCache(CacheConfig(metrics=metrics, redis_url=redis_url, name="relayed")) as cache:
            await cache.set("k", 1)
            await cache.get("k")
            await cache.get("missing")
            await cache.get_many(["k", "missing"])
            metrics.force_flush()  # while the cache lives: its gauges (hit rate) report too
        metrics.shutdown()
        # rotel relays on its own schedule (it batches): wait for everything sent to arrive
        settle(lambda: span_view(relayed.traces) == span_view(direct.traces))
        settle(lambda: metric_view(relayed.metrics) == metric_view(direct.metrics))
        sent, arrived = metric_view(direct.metrics), metric_view(relayed.metrics)
        assert {sc.DURATION, sc.DB_CLIENT_DURATION, sc.GETS, sc.HIT_RATE} <= sent.keys()
        assert arrived == sent, rotel.log.read_text()[-2000:]
        (unit, kind, temporality, resource, scope), exports = arrived[sc.DB_CLIENT_DURATION]
        assert (unit, kind, temporality, scope) == ("s", "histogram", 2, "yokedcache")  # 2: cumulative
        assert ("service.name", "rotel-test") in resource
        assert any(exemplars for points in exports for _, _, exemplars in points)  # sampled: they carry the trace
        assert span_view(relayed.traces) == span_view(direct.traces)
        assert [s[0] for s in span_view(relayed.traces)] == sorted(["SET", "GET", "GET", "MGET"])
    finally:
        rotel.close()
        direct.close()
        relayed.close()

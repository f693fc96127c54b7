"""``OTLPCollector``: metrics (and traces) to an OpenTelemetry Collector, Jaeger or a vendor.

Both OTLP transports are supported: ``protocol="grpc"`` (port 4317) and
``protocol="http/protobuf"`` (port 4318). Anything not passed is read by the OTel exporters from
the standard environment (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_EXPORTER_OTLP_PROTOCOL``, ``OTEL_METRIC_EXPORT_INTERVAL``, ...). Temporality is
cumulative unless ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` says otherwise.
"""

from __future__ import annotations

import os
import re
from typing import Any

from .. import validation
from .._extras import require

_PROTOCOLS = ("grpc", "http/protobuf")


def _env_protocol() -> str:
    """The protocol the standard variables choose (the metrics-specific one first), else gRPC."""
    env = os.environ
    return env.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"


def _http_endpoints(endpoint: str | None) -> tuple[str | None, str | None]:
    """``(metrics URL, traces URL)`` for OTLP/HTTP: a base URL gets each signal's path appended
    (what the OTel exporters do with ``OTEL_EXPORTER_OTLP_ENDPOINT``, but not with ``endpoint=``)."""
    base = endpoint.rstrip("/") if endpoint else None
    metric_endpoint = f"{base}/v1/metrics" if base and not base.endswith("/v1/metrics") else base
    trace_endpoint = f"{base}/v1/traces" if base and not base.endswith("/v1/traces") else None
    return metric_endpoint, trace_endpoint


class OTLPCollector:
    def __init__(
        self,
        endpoint: str | None = None,
        protocol: str | None = None,
        headers: dict[str, str] | None = None,
        export_interval: float | None = None,
        traces: bool = True,
        insecure: bool | None = None,
        timeout: float | None = None,
    ) -> None:
        protocol = protocol or _env_protocol()
        if protocol not in _PROTOCOLS:
            raise ValueError(f"protocol: expected one of {_PROTOCOLS}, got {protocol!r}")
        validation.number("export_interval", export_interval, rule="expected a positive number of seconds",
                          minimum=0, allow_zero=False, allow_none=True)  # fmt: skip
        self.protocol = protocol
        self.endpoint = endpoint
        kwargs: dict[str, Any] = {k: v for k, v in (("headers", headers), ("timeout", timeout)) if v is not None}
        if protocol == "grpc":
            mod = require("opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "otlp")
            trace_mod = require("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "otlp")
            if insecure is not None:
                kwargs["insecure"] = insecure
            metric_endpoint = trace_endpoint = endpoint
        else:
            mod = require("opentelemetry.exporter.otlp.proto.http.metric_exporter", "otlp")
            trace_mod = require("opentelemetry.exporter.otlp.proto.http.trace_exporter", "otlp")
            metric_endpoint, trace_endpoint = _http_endpoints(endpoint)
        self.metric_exporter = mod.OTLPMetricExporter(endpoint=metric_endpoint, **kwargs)
        self.span_exporter = trace_mod.OTLPSpanExporter(endpoint=trace_endpoint, **kwargs) if traces else None
        self._export_interval = export_interval
        self._reader: Any = None
        where = endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "the default endpoint"
        #: Names the peer in messages (``CacheMetrics``' shutdown warning): never headers, and
        #: userinfo in the endpoint shows as ``***``.
        self.target = f"OTLP {protocol} to {re.sub(r'//[^/@]*@', '//***@', where)}"

    def metric_reader(self, **_: Any) -> Any:
        if self._reader is None:
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            millis = self._export_interval * 1000 if self._export_interval is not None else None
            self._reader = PeriodicExportingMetricReader(self.metric_exporter, export_interval_millis=millis)
        return self._reader

    def abort(self) -> None:
        """Stop exports in progress now (a shutdown past its deadline): a gRPC exporter closes its
        channel, which cancels the call in flight; both stop retrying."""
        for exporter in (self.metric_exporter, self.span_exporter):
            if exporter is not None:
                exporter.shutdown(timeout_millis=0)

    def span_processor(self) -> Any:
        if self.span_exporter is None:
            return None
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        return BatchSpanProcessor(self.span_exporter)

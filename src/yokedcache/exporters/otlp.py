"""The OTLP metric exporter, reader, span exporter and span processor behind ``OTLPCollector``.

``OTLPCollector`` (``monitoring/otlp.py``) is the documented API and checks its arguments; the
knowledge of the OpenTelemetry packages lives here, beside the other exporters: which module
serves each transport (``grpc`` on port 4317, ``http/protobuf`` on 4318), what each takes, and
how an endpoint becomes each signal's URL. Anything passed as ``None`` is left to the OTel
exporters, which read the standard environment (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_EXPORTER_OTLP_PROTOCOL``, ``OTEL_METRIC_EXPORT_INTERVAL``,
...). The exporter packages and the SDK (the ``otlp`` extra) are imported when something is
built, never by importing this module.
"""

from __future__ import annotations

import inspect
import os
import re
from typing import Any

from .._extras import require

PROTOCOLS = ("grpc", "http/protobuf")


def env_protocol() -> str:
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


def build_exporters(
    protocol: str,
    endpoint: str | None,
    *,
    headers: dict[str, str] | None,
    timeout: float | None,
    insecure: bool | None,
    traces: bool,
) -> tuple[Any, Any | None]:
    """``(metric exporter, span exporter or None)`` for ``protocol``, one of :data:`PROTOCOLS`.

    Both exporter modules are required even without traces: one message then names the missing
    extra, whichever signal is asked for. ``insecure`` means something to gRPC only (HTTP takes
    it from the URL's scheme).
    """
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
    metric_exporter = mod.OTLPMetricExporter(endpoint=metric_endpoint, **kwargs)
    span_exporter = trace_mod.OTLPSpanExporter(endpoint=trace_endpoint, **kwargs) if traces else None
    return metric_exporter, span_exporter


def periodic_reader(exporter: Any, export_interval: float | None) -> Any:
    """The SDK's periodic reader over ``exporter``; ``None`` leaves the interval to the SDK
    (``OTEL_METRIC_EXPORT_INTERVAL``, else 60 s)."""
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    millis = export_interval * 1000 if export_interval is not None else None
    return PeriodicExportingMetricReader(exporter, export_interval_millis=millis)


def batch_processor(exporter: Any) -> Any:
    """Spans leave in batches from the SDK's thread, never on the operation's path."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(exporter)


def abort(*exporters: Any) -> None:
    """Stop exports in progress now (a shutdown past its deadline): a gRPC exporter closes its
    channel, which cancels the call in flight; both stop retrying. ``None`` entries are skipped.

    The HTTP span exporter's ``shutdown()`` takes no ``timeout_millis`` (its metric exporter and
    both gRPC ones do): passing it raised ``TypeError`` and left that exporter running.
    """
    for exporter in exporters:
        if exporter is None:
            continue
        if "timeout_millis" in inspect.signature(exporter.shutdown).parameters:
            exporter.shutdown(timeout_millis=0)
        else:
            exporter.shutdown()


def describe(protocol: str, endpoint: str | None) -> str:
    """Names the peer in messages (``CacheMetrics``' shutdown warning): never headers, and
    userinfo in the endpoint shows as ``***``."""
    where = endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "the default endpoint"
    return f"OTLP {protocol} to {re.sub(r'//[^/@]*@', '//***@', where)}"

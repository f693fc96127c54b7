"""``OTLPCollector``: metrics (and traces) to an OpenTelemetry Collector, Jaeger or a vendor.

Both OTLP transports are supported: ``protocol="grpc"`` (port 4317) and
``protocol="http/protobuf"`` (port 4318). Anything not passed is read by the OTel exporters from
the standard environment (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_EXPORTER_OTLP_PROTOCOL``, ``OTEL_METRIC_EXPORT_INTERVAL``, ...). Temporality is
cumulative unless ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` says otherwise.
"""

from __future__ import annotations

from typing import Any

from .. import validation
from ..exporters import otlp
from ..exporters.collectors import Collector


class OTLPCollector(Collector):
    """Send the cache's metrics, and its spans unless ``traces=False``, over OTLP.

    A collector for ``CacheMetrics``: it checks the documented arguments before anything is
    built, so a typo fails at construction with the argument's name; the exporters, the reader
    and the span processor come from ``exporters/otlp.py``.
    """

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
        validation.boolean("traces", traces)
        validation.boolean("insecure", insecure, allow_none=True)
        protocol = protocol or otlp.env_protocol()
        if protocol not in otlp.PROTOCOLS:
            raise ValueError(f"protocol: expected one of {otlp.PROTOCOLS}, got {protocol!r}")
        validation.number("export_interval", export_interval, rule="expected a positive number of seconds",
                          minimum=0, allow_zero=False, allow_none=True)  # fmt: skip
        self.protocol = protocol
        self.endpoint = endpoint
        self.metric_exporter, self.span_exporter = otlp.build_exporters(
            protocol, endpoint, headers=headers, timeout=timeout, insecure=insecure, traces=traces
        )
        self._export_interval = export_interval
        self._reader: Any = None
        #: Names the peer in messages (``CacheMetrics``' shutdown warning), without secrets.
        self.target = otlp.describe(protocol, endpoint)

    def metric_reader(self, **_: Any) -> Any:
        if self._reader is None:
            self._reader = otlp.periodic_reader(self.metric_exporter, self._export_interval)
        return self._reader

    def abort(self) -> None:
        """Stop exports in progress now: ``CacheMetrics.shutdown`` calls this past its deadline."""
        otlp.abort(self.metric_exporter, self.span_exporter)

    def span_processor(self) -> Any:
        if self.span_exporter is None:
            return None
        return otlp.batch_processor(self.span_exporter)

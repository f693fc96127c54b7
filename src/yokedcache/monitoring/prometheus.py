"""``PrometheusCollector``: the OTel Prometheus exporter, served on its own port.

Series names follow Prometheus' ``namespace_subsystem_name`` convention: the cache's
instruments (``yokedcache.cache.gets``) lose their ``yokedcache.`` and gain the namespace, so
``namespace="myapp"`` yields ``myapp_cache_gets_total`` and the default yields exactly the
documented ``yokedcache_cache_gets_total`` (the reader in ``exporters/prometheus.py`` renames).
``labels`` become constant labels on every series. ``registry=None`` means a private
``CollectorRegistry``, so two collectors (or two test cases) never collide; pass
``prometheus_client.REGISTRY`` to share the process-wide one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import validation
from .._extras import require

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

require("opentelemetry.exporter.prometheus", "prometheus")

from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402
from prometheus_client.exposition import choose_encoder  # noqa: E402

from ..exporters.collectors import Collector  # noqa: E402
from ..exporters.prometheus import NamespacedReader  # noqa: E402
from ..server.http import MetricsServer, ReadinessRoute  # noqa: E402


class PrometheusCollector(Collector):
    """Expose the cache's metrics for Prometheus at ``http://addr:port/metrics``.

    ``addr`` defaults to loopback (like OTel's own reader); use ``addr="0.0.0.0"`` in a
    container so Prometheus can reach it. ``port=None`` builds the reader without a server
    (mount ``registry`` in your own web app instead). The server also answers ``/healthz``,
    ``/readyz`` and, unless ``status_page=False``, the status page ``/`` and ``/status.json``.
    """

    def __init__(
        self,
        namespace: str = "yokedcache",
        port: int | None = 8000,
        registry: CollectorRegistry | None = None,
        subsystem: str | None = None,
        labels: dict[str, str] | None = None,
        addr: str = "127.0.0.1",
        status_page: bool = True,
    ) -> None:
        validation.boolean("status_page", status_page)  # "no" or 0 must not serve the page
        validation.prometheus_name("namespace", namespace)
        validation.prometheus_name("subsystem", subsystem, allow_none=True)
        labels = validation.label_names("labels", dict(labels or {}))
        if registry is not None and not isinstance(registry, CollectorRegistry):
            raise TypeError(f"registry: expected a prometheus_client CollectorRegistry, got {type(registry).__name__}")
        self.namespace = namespace
        self.subsystem = subsystem
        self.labels = labels
        self.prefix = f"{namespace}_{subsystem}" if subsystem else namespace
        self.registry = registry if registry is not None else CollectorRegistry()
        self.reader = NamespacedReader(self.prefix, labels, self.registry)
        self.server: MetricsServer | None = None
        #: Serve ``/`` (the live status page) and ``/status.json`` beside ``/metrics``.
        self.status_page = status_page
        self.status: Any = None  # the StatusBoard, once bound
        if port is not None:
            self.server = MetricsServer(addr, port)
            self.server.route("/metrics", self._metrics)

    def _metrics(self, headers: dict[str, str]) -> tuple[int, str, bytes]:
        encoder, content_type = choose_encoder(headers.get("accept", ""))
        return 200, content_type, encoder(self.registry)

    def metric_reader(self, **_: Any) -> PrometheusMetricReader:
        return self.reader

    def bind(self, meter_provider: MeterProvider) -> None:
        """Serve ``/readyz`` (and the status page) for the caches that report into
        ``meter_provider`` (CacheMetrics does this)."""
        if self.server is not None:
            from ..telemetry.observers import members_of

            self.server.route("/readyz", ReadinessRoute(lambda: members_of(meter_provider)))
            if self.status_page:
                from ..server.status_page import serve_status

                self.status = serve_status(self.server, lambda: members_of(meter_provider))

    @property
    def url(self) -> str | None:
        """Base URL of the HTTP server (``None`` without one)."""
        return self.server.url if self.server is not None else None

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

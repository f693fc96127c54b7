"""``PrometheusCollector``: the OTel Prometheus exporter, served on its own port.

Series names follow Prometheus' ``namespace_subsystem_name`` convention: the cache's
instruments (``yokedcache.cache.gets``) lose their ``yokedcache.`` and gain the namespace, so
``namespace="myapp"`` yields ``myapp_cache_gets_total`` and the default yields exactly the
documented ``yokedcache_cache_gets_total`` (the reader in ``exporters/prometheus.py`` renames).
``labels`` become constant labels on every series. ``registry=None`` means a private
``CollectorRegistry``, so two collectors (or two test cases) never collide; pass
``prometheus_client.REGISTRY`` to share the process-wide one.

Multiprocess mode (``multiprocess_dir=`` or ``$PROMETHEUS_MULTIPROC_DIR``): every worker writes
its figures to ``prometheus_client``'s store (``exporters/multiprocess.py``), binds the port with
``SO_REUSEPORT`` beside its siblings, and answers any scrape, ``/readyz`` and ``/status.json``
for the whole service (docs/multiprocess.md).
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
from ..server.http import MetricsServer, ReadinessRoute, Route, json_response  # noqa: E402
from ..server.mount import RouteTable  # noqa: E402

#: The collector ``make_asgi_app()`` / ``make_wsgi_app()`` serve when given none: the last bound.
_last_bound: list[PrometheusCollector] = []


class PrometheusCollector(Collector):
    """Expose the cache's metrics for Prometheus at ``http://addr:port/metrics``.

    ``addr`` defaults to loopback (like OTel's own reader); use ``addr="0.0.0.0"`` in a
    container so Prometheus can reach it. ``port=None`` builds the reader without a server
    (mount ``registry`` in your own web app instead). The server also answers ``/healthz``,
    ``/readyz`` and, unless ``status_page=False``, the status page ``/`` and ``/status.json``;
    ``routes`` holds the same routes for ``make_asgi_app`` / ``make_wsgi_app``.

    ``multiprocess_dir`` (default ``$PROMETHEUS_MULTIPROC_DIR``): the directory the workers of
    one service share; any of them then answers for all. ``multiprocess_interval``: seconds
    between a worker's writes there (a SIGKILLed worker loses at most that much).
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
        multiprocess_dir: Any = None,
        multiprocess_interval: float = 1.0,
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
        self.store: Any = None  # the multiprocess store (exporters/multiprocess.py), in that mode
        path = _multiprocess(multiprocess_dir, multiprocess_interval)
        if path is None:
            self.reader = NamespacedReader(self.prefix, labels, self.registry)
        else:
            from ..exporters.multiprocess import MergedView, ProcessStore

            self.reader = NamespacedReader(self.prefix, labels, CollectorRegistry())  # this process alone
            self.store = ProcessStore(path, self.prefix, self.reader.families, lambda: False, multiprocess_interval)
            self.reader.before_shutdown.append(self.store.close)
            self.registry.register(MergedView(self.store))
        self.server: MetricsServer | None = None
        #: Serve ``/`` (the live status page) and ``/status.json`` beside ``/metrics``.
        self.status_page = status_page
        self.status: Any = None  # the StatusBoard, once bound
        self.routes = RouteTable()
        if port is not None:
            self.server = MetricsServer(addr, port, reuse_port=self.store is not None)
        self._route("/metrics", self._metrics)
        # Until bind(): in multiprocess mode the kernel may hand a probe to a worker still starting.
        self._route("/readyz", lambda headers: json_response(503, {"status": "unhealthy", "reasons": ["starting"]}))

    def _route(self, path: str, handler: Route) -> None:
        """Serve ``handler`` on the port (if any) and in the mountable apps."""
        self.routes.route(path, handler)
        if self.server is not None:
            self.server.route(path, handler)

    def every_poll(self, task: Any) -> None:
        """Periodic work of a route: on the server's thread, or before a mounted app's requests."""
        (self.server or self.routes).every_poll(task)

    route = _route  # the shape serve_status expects

    def _metrics(self, headers: dict[str, str]) -> tuple[int, str, bytes]:
        encoder, content_type = choose_encoder(headers.get("accept", ""))
        return 200, content_type, encoder(self.registry)

    def metric_reader(self, **_: Any) -> PrometheusMetricReader:
        return self.reader

    def bind(self, meter_provider: MeterProvider) -> None:
        """Serve ``/readyz`` (and the status page) for the caches that report into
        ``meter_provider`` (CacheMetrics does this)."""
        from ..telemetry.observers import members_of

        readiness: Route = ReadinessRoute(lambda: members_of(meter_provider))
        if self.store is not None:
            readiness = _start_store(self.store, readiness, lambda: members_of(meter_provider))
        self._route("/readyz", readiness)
        if self.status_page:
            from ..server.status_page import serve_status

            self.status = serve_status(self, lambda: members_of(meter_provider))  # type: ignore[arg-type]
            if self.store is not None:
                from ..exporters.multiprocess import service_workers

                path = self.store.path
                self.status.extras["workers"] = lambda: service_workers(path)
        _last_bound[:] = [self]

    @property
    def url(self) -> str | None:
        """Base URL of the HTTP server (``None`` without one)."""
        return self.server.url if self.server is not None else None

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
        if self.server is not None:
            self.server.close()
            self.server = None


def _multiprocess(argument: Any, interval: Any) -> str | None:
    from ..exporters.multiprocess import multiprocess_dir

    validation.number("multiprocess_interval", interval, rule="expected a positive number of seconds",
                      minimum=0, allow_zero=False, finite=True)  # fmt: skip
    return multiprocess_dir(argument)


def _start_store(store: Any, readiness: Route, members: Any) -> Route:
    """Start the store's writes now the provider exists, with this worker's cheap state (no
    ping) in its heartbeat; ``/readyz`` then answers for every worker."""
    from ..exporters.multiprocess import ServiceReadiness, shares_backend, worker_state

    store.set_sources(shared=lambda: shares_backend(members()), status=lambda: worker_state(members()))
    store.start()
    return ServiceReadiness(readiness, store.path)


def make_asgi_app(collector: PrometheusCollector | Any = None) -> Any:
    """``/metrics``, ``/healthz``, ``/readyz``, ``/status.json`` and the status page as an ASGI
    app, relative to where it is mounted. ``collector``: a ``PrometheusCollector`` or the
    ``CacheMetrics`` holding one (default: the last one bound in this process)."""
    from ..server.mount import AsgiApp

    return AsgiApp(_collector_of(collector).routes)


def make_wsgi_app(collector: PrometheusCollector | Any = None) -> Any:
    """The same routes as :func:`make_asgi_app`, as a WSGI app (Flask, Django)."""
    from ..server.mount import WsgiApp

    return WsgiApp(_collector_of(collector).routes)


def _collector_of(found: Any) -> PrometheusCollector:
    if found is None:
        if not _last_bound:
            raise ValueError("collector: no PrometheusCollector is bound yet; build CacheMetrics first or pass one")
        return _last_bound[0]
    if isinstance(found, PrometheusCollector):
        return found
    for member in getattr(found, "collectors", []):
        if isinstance(member, PrometheusCollector):
            return member
    raise TypeError(
        f"collector: expected a PrometheusCollector or a CacheMetrics holding one, got {type(found).__name__}"
    )


def mark_process_dead(pid: int, path: Any = None) -> None:
    """Fold a dead worker's counts into the store's archive and delete its files (its gauges
    stop counting at once). ``path``: the multiprocess directory (default
    ``$PROMETHEUS_MULTIPROC_DIR``). Without it a scrape folds a silent, vanished worker later."""
    from ..exporters.multiprocess import fold_dead, multiprocess_dir

    found = multiprocess_dir(path)
    if found is None:
        raise ValueError("path: no multiprocess directory given and $PROMETHEUS_MULTIPROC_DIR is not set")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise TypeError(f"pid: expected a process id (a positive int), got {pid!r}")
    fold_dead(found, pids=[pid])


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit`` hook: ``from yokedcache.monitoring import child_exit`` in
    ``gunicorn.conf.py``. Keeps the directory at the live workers' files plus one archive,
    however many workers are replaced."""
    mark_process_dead(worker.pid)

"""The OTel Prometheus reader as yokedcache exposes it: renamed, described and scraped one at a time.

Series names follow Prometheus' ``namespace_subsystem_name`` convention: the cache's
instruments (``yokedcache.cache.gets``) lose their ``yokedcache.`` and gain the prefix, so
``myapp`` yields ``myapp_cache_gets_total`` and the default yields exactly the documented
``yokedcache_cache_gets_total``. (The reader's own ``prefix=`` would prepend and give
``myapp_yokedcache_cache_...``, which is why renaming happens here.) ``PrometheusCollector``
(``monitoring/prometheus.py``) puts this reader behind the HTTP server of ``server/http.py``.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import replace
from typing import Any

from .._extras import require

require("opentelemetry.exporter.prometheus", "prometheus")

from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: E402
from opentelemetry.sdk.metrics.export import MetricsData  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from ..telemetry.semconv import BUILT_IN_UNITS  # noqa: E402

__all__ = ["NamespacedReader"]

# The name this warning had before the reader moved out of monitoring/: logging set-ups filter on it.
log = logging.getLogger("yokedcache.monitoring")

_BUILT_IN = "yokedcache."
_UNIT_SUFFIX = {"By": "bytes", "s": "seconds"}  # the units our instruments and the shim use


def _family(name: str, unit: str) -> str:
    """The Prometheus family an instrument lands in (``_total`` aside), as the exporter names it."""
    family = re.sub(r"[^a-zA-Z0-9_]", "_", name)
    suffix = _UNIT_SUFFIX.get(unit, "")
    return family if not suffix or family.endswith("_" + suffix) else f"{family}_{suffix}"


#: The families the cache's own instruments take (before the namespace).
_TAKEN = frozenset(_family(name[len(_BUILT_IN) :], unit) for name, unit in BUILT_IN_UNITS.items())


def _rename(data: MetricsData, prefix: str, labels: dict[str, str], warned: set[str]) -> MetricsData:
    """Built-in ``yokedcache.x`` becomes ``<prefix>.x`` and an application's ``y`` becomes
    ``<prefix>.y`` -- unless that lands in a built-in's family (``examples/health_monitor.py``
    pushes ``cache.hit_rate`` and ``cache.size_bytes``): two families of one name make Prometheus reject
    the whole scrape, so the application's becomes ``<prefix>.app.y``, with one warning."""
    resource_metrics = []
    for rm in data.resource_metrics:
        scope_metrics = []
        for sm in rm.scope_metrics:
            metrics = []
            for m in sm.metrics:
                if m.name.startswith(_BUILT_IN):
                    base = m.name[len(_BUILT_IN) :]
                elif _family(m.name, m.unit or "") in _TAKEN:
                    base = f"app.{m.name}"
                    if m.name not in warned:
                        warned.add(m.name)
                        log.warning(
                            "application metric %r has the name of a built-in cache metric; exported as %s",
                            m.name,
                            f"{prefix}_{base}".replace(".", "_"),
                        )
                else:
                    base = m.name
                points = m.data
                if labels:
                    points = replace(
                        points,
                        data_points=[replace(p, attributes={**labels, **dict(p.attributes or {})})
                                     for p in points.data_points],
                    )  # fmt: skip
                metrics.append(replace(m, name=f"{prefix}.{base}", data=points))
            scope_metrics.append(replace(sm, metrics=metrics))
        resource_metrics.append(replace(rm, scope_metrics=scope_metrics))
    return replace(data, resource_metrics=resource_metrics)


_APP_SCOPE = "yokedcache.app"  # the meter CacheMetrics records application metrics on


def _with_help(data: MetricsData) -> MetricsData:
    """Give every metric without a description a help text: promtool (and Grafana's metric
    browser) flag families whose ``# HELP`` is empty. Application metrics say where they come
    from, ``user.login recorded through CacheMetrics``. Returns ``data`` itself when nothing
    lacks one (the common case costs one pass over the names)."""
    if all(m.description for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics):
        return data
    resource_metrics = []
    for rm in data.resource_metrics:
        scope_metrics = []
        for sm in rm.scope_metrics:
            origin = " recorded through CacheMetrics" if sm.scope.name == _APP_SCOPE else ""
            metrics = [m if m.description else replace(m, description=f"{m.name}{origin}") for m in sm.metrics]
            scope_metrics.append(replace(sm, metrics=metrics))
        resource_metrics.append(replace(rm, scope_metrics=scope_metrics))
    return replace(data, resource_metrics=resource_metrics)


class _OneScrapeAtATime:
    """The exporter's prometheus_client collector, collected under a lock.

    Its ``collect()`` runs an SDK collection that queues one ``MetricsData``, then renders
    everything queued. Two scrapes at once (two Prometheus replicas) interleave: one renders
    both collections -- every family twice, which Prometheus rejects -- the other nothing.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()

    def collect(self) -> list[Any]:
        with self._lock:
            return list(self._inner.collect())

    def describe(self) -> list[Any]:
        # Without this, a registry with auto_describe (prometheus_client.REGISTRY) would run a
        # collection just to learn the names when we register.
        return []


class NamespacedReader(PrometheusMetricReader):
    """The OTel Prometheus reader with the renaming, help texts and scrape lock above.

    A subclass rather than a wrapper: the exporter renders what ``_receive_metrics`` hands it,
    so that is the one place where a collection can be renamed before it is rendered.
    """

    def __init__(self, prefix: str, labels: dict[str, str], registry: CollectorRegistry) -> None:
        super().__init__(scope_info_enabled=False, registry=registry)
        self._yc_prefix = prefix
        self._yc_labels = labels
        self._yc_warned: set[str] = set()
        registry.unregister(self._collector)
        self._yc_locked = _OneScrapeAtATime(self._collector)
        registry.register(self._yc_locked)
        #: Called first thing in ``shutdown``, while the SDK still collects (the multiprocess
        #: store's last write).
        self.before_shutdown: list[Any] = []

    def families(self) -> list[Any]:
        """One collection as prometheus_client families (what a scrape of this process renders)."""
        return self._yc_locked.collect()

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        if metrics_data is not None:
            metrics_data = _with_help(metrics_data)  # before renaming: the help names what the app recorded
            if self._yc_prefix != "yokedcache" or self._yc_labels:
                metrics_data = _rename(metrics_data, self._yc_prefix, self._yc_labels, self._yc_warned)
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        # A pull exporter has nothing to push: data leaves when scraped. The base class would
        # collect into the exporter's queue, and the next scrape would render that collection
        # beside its own: every family twice.
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        for hook in self.before_shutdown:
            hook()
        self._registry.unregister(self._yc_locked)

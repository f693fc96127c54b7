"""What ``CacheMetrics`` asks of the collectors it is given, declared rather than probed.

Three shapes plug into ``CacheMetrics([...])``:

- ``Collector``: the built-in collectors' contract (``monitoring/``: ``PrometheusCollector``,
  ``StatsDCollector``, ``OTLPCollector``, ``NoOpCollector``). Only ``metric_reader`` is
  required; every other member has a default meaning "not here", so each collector overrides
  what it has (Prometheus serves HTTP, OTLP exports spans and can be aborted).
- ``PushCollector``: the documented custom collector (``docs/monitoring.md``, "Adding Custom
  Collectors"): any object with async ``increment/gauge/histogram/timing``. The bridge
  (``exporters/bridge.py``) delivers to it, on a reader ``CacheMetrics`` adds for it.
- ``ReaderSource``: any object offering an SDK metric reader (``tests/test_soak.py`` plugs in
  an in-memory one); only its ``metric_reader`` is used.

``CacheMetrics`` (``monitoring/metrics.py``) adapts the last two into a ``Collector``, so it
deals with one contract. The shapes live here, below ``monitoring/``, because
``exporters/bridge.py`` checks ``PushCollector`` too (``tests/test_import_graph.py``); nothing
here imports the SDK at import time, so ``import yokedcache.monitoring`` still loads none.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard, runtime_checkable

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import SpanProcessor


class PushCollector(Protocol):
    """The documented custom collector: the bridge calls these once per export interval, on
    its own event loop; ``tags`` are the data point's attributes as strings."""

    async def increment(self, metric: str, value: float = 1, tags: dict[str, Any] | None = None) -> None: ...

    async def gauge(self, metric: str, value: float, tags: dict[str, Any] | None = None) -> None: ...

    async def histogram(self, metric: str, value: float, tags: dict[str, Any] | None = None) -> None: ...

    async def timing(self, metric: str, value: float, tags: dict[str, Any] | None = None) -> None: ...


#: ``PushCollector``'s methods, in the order messages name them (``tests/test_collector_contract.py``
#: holds this to the protocol).
PUSH_METHODS = ("increment", "gauge", "histogram", "timing")


def missing_push_methods(obj: object) -> list[str]:
    """The ``PushCollector`` methods ``obj`` lacks (a method set to ``None`` counts as lacking):
    the one check behind ``CacheMetrics``' choice and the bridge's refusal."""
    return [m for m in PUSH_METHODS if not callable(getattr(obj, m, None))]


def is_push_collector(obj: object) -> TypeGuard[PushCollector]:
    return not missing_push_methods(obj)


@runtime_checkable
class ReaderSource(Protocol):
    """Any object offering an SDK metric reader for ``CacheMetrics``' provider."""

    def metric_reader(self, **kwargs: Any) -> MetricReader | None: ...


class Collector(ABC):
    """A collector ``CacheMetrics`` builds its providers from, binds, and shuts down."""

    #: Names the peer in ``CacheMetrics``' shutdown warning, without secrets (``None``: nothing
    #: to name).
    target: str | None = None

    @abstractmethod
    def metric_reader(self, **kwargs: Any) -> MetricReader | None:
        """The reader this collector adds to the ``MeterProvider`` (``None``: none).

        ``CacheMetrics`` passes ``timing_names``: the histograms recorded through its
        ``timing``, which a push collector receives as timings (``exporters/bridge.py``).
        """

    def span_processor(self) -> SpanProcessor | None:
        """The span processor for the ``TracerProvider`` (``None``: this collector takes no spans;
        when none does, ``CacheMetrics`` builds no tracer provider)."""
        return None

    def bind(self, meter_provider: MeterProvider) -> None:
        """Told the provider once it exists (Prometheus serves ``/readyz`` for its caches)."""
        return None

    def close(self) -> None:
        """Release what the collector holds beside its reader (an HTTP server).

        ``CacheMetrics.shutdown`` runs it alongside the providers' shutdown, so nothing a final
        export needs may go here. That is why it is not called on a collector that is also a
        ``PushCollector`` (``StatsDCollector``): the bridge feeding it closes it after the final
        export (``CollectorExporter.shutdown`` in ``exporters/bridge.py``).
        """
        return None

    def abort(self) -> None:
        """Stop exports still running at ``CacheMetrics.shutdown``'s deadline."""
        return None

"""``StatsDCollector``: the documented StatsD collector, an OTel bridge exporter underneath."""

from __future__ import annotations

from collections.abc import Container
from typing import TYPE_CHECKING, Any

from .. import validation
from .._extras import require

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader

    from ..exporters.bridge import CollectorExporter

# Both before the bridge's own check (which would name [sdk]): one message, naming [statsd].
require("statsd", "statsd")
require("opentelemetry.sdk.metrics", "statsd")

from ..exporters.collectors import Collector  # noqa: E402
from ..exporters.statsd import StatsDSink  # noqa: E402


class StatsDCollector(StatsDSink, Collector):
    """Send cache (and application) metrics to StatsD / DogStatsD.

    Aggregated per ``flush_interval`` seconds (default 1 s) and packed into datagrams, so the
    traffic does not grow with the number of cache operations. ``use_tags=True`` writes
    DogStatsD tags (``|#result:hit``). DNS is resolved on the first flush, in the exporter's
    thread; an unreachable or unresolvable host is counted in ``stats()`` and logged, never
    raised into the application.

    Both a ``Collector`` and a push collector: its reader is a bridge that feeds it, and that
    bridge, not ``CacheMetrics``, closes it (``StatsDSink.close``) after the final export.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 8125,
        prefix: str | None = "yokedcache",
        sample_rate: float = 1.0,
        timeout: float = 5.0,
        use_tags: bool = False,
        *,
        flush_interval: float = 1.0,
        max_udp_size: int = 1432,
        max_samples: int = 64,
    ) -> None:
        super().__init__(
            host, port, prefix, sample_rate, timeout, use_tags, max_udp_size=max_udp_size, max_samples=max_samples
        )
        # NaN fails every comparison and inf makes the first export wait forever: either way
        # nothing would ever be sent, so both are rejected here.
        validation.number("flush_interval", flush_interval, rule="expected a positive, finite number of seconds",
                          minimum=0, allow_zero=False, finite=True)  # fmt: skip
        self.flush_interval = float(flush_interval)
        self.exporter: CollectorExporter | None = None

    def metric_reader(self, timing_names: Container[str] = frozenset(), **_: Any) -> MetricReader:
        from ..exporters.bridge import bridge_reader

        reader, self.exporter = bridge_reader([self], self.flush_interval, timing_names=timing_names,
                                              timeout=self.timeout)  # fmt: skip
        return reader
